#include "store/admin/connection.hpp"

#include "store/admin/impl.hpp"

namespace pgcourier::store::admin {

Connection::Connection(const std::string& database_url) {
  pg::Translate("connect", [&] {
    impl_ = std::make_unique<Impl>(database_url);
    return 0;
  });
}

Connection::~Connection() = default;

}  // namespace pgcourier::store::admin

// admin::IngressSources: the sources of pgcourier-gateway's inbound ingress
// (sql/schema/80_gateway.sql) for pgcourierctl ingress-source: create (the
// caller seals the secret bound to the id from NewId()), list. Borrows an
// admin::Connection; not thread-safe. Throws StoreError.
#pragma once

#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

struct NewIngressSource {
  std::string id;  // from NewId(): the sealed secret is bound to it
  std::string tenant_id;
  std::string scheme;
  std::string sealed_secret;
  std::string event_type;  // empty: from the request
  int tolerance_seconds = 300;
};

struct IngressSourceInfo {
  std::string id;
  std::string tenant_id;
  std::string scheme;
  std::string event_type;
  int tolerance_seconds = 0;
  std::string created_at;
  long long accepted = 0;
  long long refused = 0;
};

class IngressSources {
 public:
  explicit IngressSources(Connection& connection) : connection_(connection) {}
  std::string NewId();
  std::string Create(const NewIngressSource& source);
  std::vector<IngressSourceInfo> List();

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin

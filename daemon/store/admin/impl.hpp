// The libpqxx side of admin::Connection and what the topic files share: the
// connection itself and NamedCall. Internal to daemon/store/admin/. Rows are
// read with pg::RowMapping (columns by name, named with AS in the SQL) and
// every call runs inside pg::Translate, the store's one error translator.
#pragma once

#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/admin/connection.hpp"
#include "store/pg/errors.hpp"
#include "store/pg/rows.hpp"

namespace pgcourier::store::admin {

struct Connection::Impl {
  pqxx::connection conn;
  explicit Impl(const std::string& url) : conn(url) { conn.set_variable("DateStyle", "ISO"); }
};

// A call of a SQL function in named notation with only the arguments given,
// so the function's own defaults apply to the others. Values are bound as
// parameters, never spliced into the SQL.
class NamedCall {
 public:
  explicit NamedCall(std::string function) : function_(std::move(function)) {}

  NamedCall& Arg(std::string_view name, std::string value, std::string_view type = "text") {
    params_.push_back(std::move(value));
    if (!args_.empty()) args_ += ", ";
    args_.append(name).append(" => $").append(std::to_string(params_.size())).append("::").append(type);
    return *this;
  }
  NamedCall& ArgUnlessEmpty(std::string_view name, std::string value, std::string_view type = "text") {
    return value.empty() ? *this : Arg(name, std::move(value), type);
  }

  // `select` is what comes before the call: "SELECT " or "SELECT a, b FROM ".
  pqxx::result Exec(pqxx::transaction_base& txn, std::string_view select, std::string_view rest = "") const {
    return txn.exec_params(std::string(select) + function_ + "(" + args_ + ")" + std::string(rest),
                           pqxx::prepare::make_dynamic_params(params_));
  }
  pqxx::row Exec1(pqxx::transaction_base& txn, std::string_view select) const {
    return txn.exec_params1(std::string(select) + function_ + "(" + args_ + ")",
                            pqxx::prepare::make_dynamic_params(params_));
  }

 private:
  std::string function_;
  std::string args_;
  std::vector<std::string> params_;
};

// Text of a field, "" for NULL.
inline std::string Text(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

}  // namespace pgcourier::store::admin

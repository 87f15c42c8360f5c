// admin::ApiTokens: the gateway's API tokens (sql/schema/80_gateway.sql) for
// pgcourierctl api-token: create (the token is returned once; only its
// SHA-256 is stored), list, revoke. Borrows an admin::Connection; not
// thread-safe. Throws StoreError.
#pragma once

#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

struct NewApiToken {
  std::string id;
  std::string token;  // shown once, never stored
};

struct ApiTokenInfo {
  std::string id;
  std::string tenant_id;  // empty: an operator token
  std::string name;
  std::string created_at;
  std::string revoked_at;    // empty: active
  std::string last_used_at;  // empty: never used
};

class ApiTokens {
 public:
  explicit ApiTokens(Connection& connection) : connection_(connection) {}
  // tenant_id empty with operator_token: a token for every tenant.
  NewApiToken Create(const std::string& tenant_id, const std::string& name, bool operator_token);
  std::vector<ApiTokenInfo> List();
  // True when revoked now, false when it already was; StoreError P0002 for an unknown id.
  bool Revoke(const std::string& id);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin

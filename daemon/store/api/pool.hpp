// api::Pool: pgcourier-gateway's database sessions. A fixed number of libpq
// connections (one per HTTP worker is enough: a request holds one for the
// length of one transaction), opened on first use and replaced after a lost
// connection. Every session has a statement deadline (statement_timeout), so
// no request waits on the database longer than that.
//
// The gateway reaches the database only through the functions of
// sql/schema/80_gateway.sql: verify_api_token, api_schema_version and the
// api_* calls, each taking the caller's scope first. Values are bound as
// parameters, never spliced into the SQL.
//
// Thread-safe: any number of threads may call at once; each call borrows one
// connection (waiting up to acquire_timeout when all are busy). Throws
// StoreError (kConnectionLost when the database cannot be reached or the wait
// for a free connection ran out).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/errors.hpp"

namespace pgcourier::store::api {

struct PoolOptions {
  std::string database_url;  // empty: the libpq environment
  int size = 4;
  std::chrono::milliseconds statement_timeout{5000};
  std::chrono::milliseconds acquire_timeout{5000};
};

struct TokenScope {
  std::string token_id;
  std::optional<std::string> tenant_id;  // nullopt: an operator token (every tenant)
};

// One argument of an api_* call: nullopt is SQL NULL; type is its SQL type.
struct Arg {
  std::optional<std::string> value;
  std::string_view type = "text";
};

class Pool {
 public:
  explicit Pool(PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // The token's scope; nullopt for an unknown or revoked token.
  std::optional<TokenScope> VerifyToken(const std::string& token);
  // courier.api_schema_version(): the newest schema version applied; nullopt
  // when the database has no such function (not migrated, or older than the gateway).
  std::optional<int> SchemaVersion();
  // courier.new_id(prefix): an id chosen before the row exists (a secret is sealed bound to it).
  std::string NewId(const std::string& prefix);
  // courier.<function>(args...) -> its jsonb result as text, in one
  // transaction. `function` must be one of 80_gateway.sql's api_* names (a
  // compile-time constant of the caller; checked, never user input).
  std::string CallJson(std::string_view function, const std::vector<Arg>& args);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::store::api

#include "store/api/pool.hpp"

#include <poll.h>

#include <condition_variable>
#include <mutex>
#include <pqxx/pqxx>
#include <stdexcept>

#include "store/pg/errors.hpp"

namespace pgcourier::store::api {
namespace {

// A session the server closed while it sat idle in the pool (a restart, a
// terminated backend, idle_session_timeout) has a readable socket: the
// server's FATAL message, then EOF. Nothing else arrives on an idle session
// of ours (no LISTEN), so a readable socket is one to replace before use,
// rather than a request that fails with 503 once per pooled connection.
bool ClosedWhileIdle(const pqxx::connection& conn) {
  pollfd p{};
  p.fd = conn.sock();
  p.events = POLLIN;
  return p.fd < 0 || ::poll(&p, 1, 0) != 0;
}

}  // namespace

struct Pool::Impl {
  PoolOptions options;
  std::mutex mu;
  std::condition_variable freed;
  // Idle connections (nullptr: not opened yet, or dropped after an error), guarded by mu.
  std::vector<std::unique_ptr<pqxx::connection>> idle;

  std::unique_ptr<pqxx::connection> Acquire() {
    std::unique_lock lock(mu);
    if (!freed.wait_for(lock, options.acquire_timeout, [&] { return !idle.empty(); })) {
      throw StoreError(StoreError::Kind::kConnectionLost, "no free database connection within the deadline");
    }
    auto conn = std::move(idle.back());
    idle.pop_back();
    return conn;
  }
  void Release(std::unique_ptr<pqxx::connection> conn) {
    {
      std::lock_guard lock(mu);
      idle.push_back(std::move(conn));
    }
    freed.notify_one();
  }
  std::unique_ptr<pqxx::connection> Open() const {
    // How long a connection attempt may take is libpq's: connect_timeout in
    // the URL or PGCONNECT_TIMEOUT (a refused connection fails at once).
    auto conn = std::make_unique<pqxx::connection>(options.database_url);
    conn->set_variable("statement_timeout", std::to_string(options.statement_timeout.count()));
    conn->set_variable("DateStyle", "ISO");
    conn->set_variable("application_name", "'pgcourier-gateway'");
    return conn;
  }

  // Runs fn(connection) with a borrowed connection; a connection that failed
  // is closed and replaced on the next use.
  template <typename Fn>
  auto With(std::string_view what, Fn&& fn) -> decltype(fn(std::declval<pqxx::connection&>())) {
    auto conn = Acquire();
    try {
      auto result = pg::Translate(what, [&] {
        if (!conn || !conn->is_open() || ClosedWhileIdle(*conn)) conn = Open();
        return fn(*conn);
      });
      Release(std::move(conn));
      return result;
    } catch (const StoreError& e) {
      // A refused statement (an unknown id, a bad value) leaves the session
      // usable once its transaction is rolled back: keep it, so refusals cost
      // no reconnect. A lost or failed connection is dropped and reopened on
      // the next use.
      if (e.kind() == StoreError::Kind::kConnectionLost || !conn || !conn->is_open()) conn.reset();
      Release(std::move(conn));
      throw;
    } catch (...) {
      conn.reset();
      Release(nullptr);
      throw;
    }
  }
};

Pool::Pool(PoolOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.size < 1) throw std::invalid_argument("pool size must be at least 1");
  impl_->options = std::move(options);
  for (int i = 0; i < impl_->options.size; ++i) impl_->idle.emplace_back(nullptr);
}

Pool::~Pool() = default;

std::optional<TokenScope> Pool::VerifyToken(const std::string& token) {
  return impl_->With("verify api token", [&](pqxx::connection& conn) -> std::optional<TokenScope> {
    pqxx::work txn(conn);
    const auto rows = txn.exec_params("SELECT t.id, t.tenant_id FROM courier.verify_api_token($1) t", token);
    txn.commit();
    if (rows.empty()) return std::nullopt;
    TokenScope scope;
    scope.token_id = rows[0]["id"].as<std::string>();
    if (!rows[0]["tenant_id"].is_null()) scope.tenant_id = rows[0]["tenant_id"].as<std::string>();
    return scope;
  });
}

std::optional<int> Pool::SchemaVersion() {
  return impl_->With("schema version", [&](pqxx::connection& conn) -> std::optional<int> {
    pqxx::read_transaction txn(conn);
    if (txn.exec1("SELECT to_regprocedure('courier.api_schema_version()') IS NOT NULL AS migrated")["migrated"]
            .as<bool>() == false) {
      return std::nullopt;
    }
    const auto field = txn.exec1("SELECT courier.api_schema_version() AS version")["version"];
    return field.is_null() ? 0 : field.as<int>();
  });
}

std::string Pool::NewId(const std::string& prefix) {
  return impl_->With("new id", [&](pqxx::connection& conn) {
    pqxx::read_transaction txn(conn);
    return txn.exec_params1("SELECT courier.new_id($1) AS id", prefix)["id"].as<std::string>();
  });
}

std::string Pool::CallJson(std::string_view function, const std::vector<Arg>& args) {
  if (function.substr(0, 4) != "api_" ||
      function.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string_view::npos) {
    throw std::logic_error("not an api function: " + std::string(function));
  }
  std::string sql = "SELECT courier.";
  sql.append(function).append("(");
  // nullptr is bound as NULL (libpqxx 6.4's string_traits<const char*>).
  std::vector<const char*> params;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i) sql += ", ";
    sql.append("$").append(std::to_string(i + 1)).append("::").append(args[i].type);
    params.push_back(args[i].value ? args[i].value->c_str() : nullptr);
  }
  sql += ")::text AS result";
  return impl_->With(function, [&](pqxx::connection& conn) {
    pqxx::work txn(conn);
    const auto row = txn.exec_params1(sql, pqxx::prepare::make_dynamic_params(params));
    txn.commit();
    return row["result"].is_null() ? std::string("null") : row["result"].as<std::string>();
  });
}

}  // namespace pgcourier::store::api

#include "test_db.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <iostream>
#include <random>

#include "store/pg/arrays.hpp"


namespace pgtest {
namespace {

std::string RandomSuffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t bits = rng();
  std::string out;
  for (int i = 0; i < 16; ++i, bits >>= 4) out.push_back(kHex[bits & 0xf]);
  return out;
}

std::string RequiredEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    FAIL(std::string(name) << " is not set: the PostgreSQL tests need the throwaway cluster that tests/run starts "
                 "(run `BUILD_DIR=build tests/run pg`)");
  }
  return value;
}

}  // namespace

std::string WithDatabase(const std::string& url, const std::string& database) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url + " dbname=" + database;  // keyword/value conninfo
  const auto authority = scheme + 3;
  const auto query = url.find('?', authority);
  const auto slash = url.find('/', authority);
  if (slash == std::string::npos || (query != std::string::npos && slash > query)) {
    std::string out = url;
    out.insert(query == std::string::npos ? out.size() : query, "/" + database);
    return out;
  }
  const auto end = query == std::string::npos ? url.size() : query;
  std::string out = url;
  out.replace(slash + 1, end - slash - 1, database);
  return out;
}

TestDb::TestDb(Kind kind) {
  admin_url_ = RequiredEnv("PGCOURIER_TEST_ADMIN_URL");
  const std::string tmpl = kind == Kind::kMigrated ? RequiredEnv("PGCOURIER_TEST_TEMPLATE") : std::string();
  name_ = "t_" + RandomSuffix();
  pqxx::connection admin(admin_url_);
  pqxx::nontransaction txn(admin);
  std::string sql = "CREATE DATABASE " + txn.quote_name(name_);
  if (!tmpl.empty()) sql += " TEMPLATE " + txn.quote_name(tmpl);
  txn.exec0(sql);
  url_ = WithDatabase(admin_url_, name_);
}

TestDb::~TestDb() {
  try {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction txn(admin);
    txn.exec0("DROP DATABASE IF EXISTS " + txn.quote_name(name_) + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::cerr << "pg_tests: could not drop test database " << name_ << ": " << e.what() << "\n";
  }
}

std::string ServerClock(pqxx::connection& conn) {
  return Scalar<std::string>(conn, "SELECT clock_timestamp()::text");
}

std::string AddSubscription(pqxx::connection& conn, const std::string& tenant,
                            const std::vector<std::string>& event_types, bool active, const std::string& policy,
                            const std::string& url) {
  std::vector<const std::string*> items;
  for (const auto& t : event_types) items.push_back(&t);
  return Scalar<std::string>(conn,
                             "INSERT INTO courier.subscriptions (tenant_id, url, event_types, policy, active) "
                             "VALUES ($1, $2, $3::text[], $4, $5) RETURNING id",
                             tenant, url, pgcourier::store::pg::TextArray(items), policy, active);
}

std::string Publish(pqxx::connection& conn, const std::string& tenant, const std::string& event_type,
                    const std::string& payload_json, const std::string& idempotency_key,
                    const std::string& trace_id) {
  return Scalar<std::string>(conn, "SELECT courier.publish($1, $2, $3::jsonb, nullif($4, ''), nullif($5, ''))",
                             tenant, event_type, payload_json, idempotency_key, trace_id);
}

std::string DeliveryOf(pqxx::connection& conn, const std::string& event_id, const std::string& subscription_id) {
  return Scalar<std::string>(conn, "SELECT id FROM courier.deliveries WHERE event_id = $1 AND subscription_id = $2",
                             event_id, subscription_id);
}

std::string NewDelivery(pqxx::connection& conn, const std::string& tenant, const std::string& subscription_id,
                        const std::string& event_type, const std::string& payload_json) {
  return DeliveryOf(conn, Publish(conn, tenant, event_type, payload_json), subscription_id);
}

void Lease(pqxx::connection& conn, const std::string& delivery_id, const std::string& owner,
           const std::string& lasts) {
  Exec(conn,
       "UPDATE courier.delivery_queue SET lease_owner = $2, lease_expires_at = now() + $3::interval "
       "WHERE delivery_id = $1",
       delivery_id, owner, lasts);
}

LoginRole::LoginRole(const TestDb& db, const std::string& group) : admin_url_(db.url()) {
  name_ = "t_" + group + "_" + RandomSuffix().substr(0, 10);
  pqxx::connection admin(admin_url_);
  Exec(admin, "CREATE ROLE " + name_ + " LOGIN IN ROLE " + group);
  const auto at = admin_url_.find('@');
  url_ = "postgresql://" + name_ + admin_url_.substr(at);
}

LoginRole::~LoginRole() {
  try {
    pqxx::connection admin(admin_url_);
    Exec(admin, "DROP OWNED BY " + name_);
    Exec(admin, "DROP ROLE " + name_);
  } catch (...) {  // NOLINT(bugprone-empty-catch): the test database is dropped anyway
  }
}

DaemonSession::DaemonSession(const std::string& url, const std::string& delivery_events)
    : session(pgcourier::store::SessionOptions{url, {}}),
      deliveries(pgcourier::store::NewDeliveriesStore(session, delivery_events)),
      runs(pgcourier::store::NewRunsStore(session)) {}

}  // namespace pgtest

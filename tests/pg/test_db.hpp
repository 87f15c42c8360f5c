// Test fixture for the PostgreSQL suite: a fresh database per test, cloned
// from the migrated template that tests/run prepares, dropped (WITH FORCE)
// at the end of the test. Plus a few libpqxx helpers for setup/inspection.
//
// Needs PGCOURIER_TEST_ADMIN_URL (libpq URI of the cluster's `postgres`
// database) and PGCOURIER_TEST_TEMPLATE (migrated template database); when
// either is missing the test FAILS with a message saying so.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "store/deliveries_store.hpp"
#include "store/runs_store.hpp"
#include "store/session.hpp"

namespace pgtest {

class TestDb {
 public:
  enum class Kind {
    kMigrated,  // CREATE DATABASE ... TEMPLATE <migrated template>
    kEmpty,     // CREATE DATABASE ... (template1: no courier schema)
  };

  explicit TestDb(Kind kind = Kind::kMigrated);
  ~TestDb();
  TestDb(const TestDb&) = delete;
  TestDb& operator=(const TestDb&) = delete;

  const std::string& name() const { return name_; }
  const std::string& url() const { return url_; }

 private:
  std::string admin_url_;
  std::string name_;
  std::string url_;
};

// A daemon's session and its lane stores, built the way the engine builds them.
struct DaemonSession {
  explicit DaemonSession(const std::string& url, const std::string& delivery_events = "all");
  pgcourier::store::Session session;
  std::unique_ptr<pgcourier::store::DeliveriesStore> deliveries;
  std::unique_ptr<pgcourier::store::RunsStore> runs;

  // claim_due for `worker`, every tenant.
  std::vector<pgcourier::model::ClaimedDelivery> Claim(const std::string& worker, int limit,
                                                       std::chrono::milliseconds lease) {
    pgcourier::store::DeliveryClaimRequest request;
    request.claim = {worker, limit, lease, {}};
    request.max_bytes = std::int64_t{1} << 40;
    request.max_first_bytes = request.max_bytes;
    request.default_slots = limit;
    return deliveries->Claim(request).rows;
  }
};

// A login role that is a member of `group` (courier_producer, courier_operator,
// courier_daemon), dropped with what it owns at the end of the test. The
// test cluster trusts 127.0.0.1, so url() logs in as it without a password.
class LoginRole {
 public:
  LoginRole(const TestDb& db, const std::string& group);
  ~LoginRole();
  LoginRole(const LoginRole&) = delete;
  LoginRole& operator=(const LoginRole&) = delete;
  const std::string& name() const { return name_; }
  const std::string& url() const { return url_; }

 private:
  std::string admin_url_, name_, url_;
};

// `url` with its database (the URI path) replaced by `database`.
std::string WithDatabase(const std::string& url, const std::string& database);

// ---- libpqxx helpers (each runs in its own committed transaction) ----

template <typename... Args>
pqxx::result Exec(pqxx::connection& conn, const std::string& sql, Args&&... args) {
  pqxx::work txn(conn);
  pqxx::result r = txn.exec_params(sql, std::forward<Args>(args)...);
  txn.commit();
  return r;
}

template <typename... Args>
pqxx::row Row(pqxx::connection& conn, const std::string& sql, Args&&... args) {
  pqxx::work txn(conn);
  pqxx::row r = txn.exec_params1(sql, std::forward<Args>(args)...);
  txn.commit();
  return r;
}

template <typename T, typename... Args>
T Scalar(pqxx::connection& conn, const std::string& sql, Args&&... args) {
  return Row(conn, sql, std::forward<Args>(args)...)[0].template as<T>();
}

template <typename... Args>
long long Count(pqxx::connection& conn, const std::string& sql, Args&&... args) {
  return Scalar<long long>(conn, sql, std::forward<Args>(args)...);
}

// True when `sql` fails with insufficient privilege (SQLSTATE 42501; libpqxx
// 6.4 throws pqxx::insufficient_privilege without filling sqlstate()). Any
// other error is reported (MESSAGE) and counts as not refused.
template <typename... Args>
bool Refused(pqxx::connection& conn, const std::string& sql, Args&&... args) {
  try {
    Exec(conn, sql, std::forward<Args>(args)...);
    return false;
  } catch (const pqxx::insufficient_privilege&) {
    return true;
  } catch (const pqxx::sql_error& e) {
    MESSAGE("unexpected error for " << sql << ": " << e.what());
    return false;
  }
}

// The error text of `sql` run in its own transaction; empty when it succeeds.
template <typename... Args>
std::string ErrorOf(pqxx::connection& conn, const std::string& sql, Args&&... args) {
  try {
    Exec(conn, sql, std::forward<Args>(args)...);
    return {};
  } catch (const pqxx::sql_error& e) {
    const std::string what = e.what();
    return what.empty() ? "(empty error)" : what;
  }
}

// Leases `delivery_id` to `owner` until now() + `lasts` (an interval), as a
// claim by another daemon would: the lease lives in courier.delivery_queue.
void Lease(pqxx::connection& conn, const std::string& delivery_id, const std::string& owner,
           const std::string& lasts = "1 minute");

// Current wall-clock time of the server, as timestamptz text.
std::string ServerClock(pqxx::connection& conn);

// Inserts a subscription; returns its id.
std::string AddSubscription(pqxx::connection& conn, const std::string& tenant,
                            const std::vector<std::string>& event_types, bool active = true,
                            const std::string& policy = "default",
                            const std::string& url = "https://hooks.example.test/in");

// courier.publish(...) in its own committed transaction; returns the event id.
std::string Publish(pqxx::connection& conn, const std::string& tenant, const std::string& event_type,
                    const std::string& payload_json = "{}", const std::string& idempotency_key = "",
                    const std::string& trace_id = "");

// The delivery of `event_id` to `subscription_id` (exactly one must exist).
std::string DeliveryOf(pqxx::connection& conn, const std::string& event_id, const std::string& subscription_id);

// Publishes one event of `event_type` for `tenant` and returns the delivery
// created for `subscription_id` (which must match it).
std::string NewDelivery(pqxx::connection& conn, const std::string& tenant, const std::string& subscription_id,
                        const std::string& event_type = "test.event", const std::string& payload_json = "{}");

}  // namespace pgtest

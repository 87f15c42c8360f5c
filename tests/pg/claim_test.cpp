// Store::ClaimDue: which rows are due, what a claim sets and returns, and
// that concurrent claimers never share a delivery.
#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <latch>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::model::ClaimedDelivery;
using pgtest::DaemonSession;
using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::Exec;
using pgtest::NewDelivery;
using pgtest::Scalar;
using pgtest::TestDb;

// Puts a delivery into `status` with `attempts`, due at now() + `due_in`.
void SetState(pqxx::connection& conn, const std::string& id, const std::string& status, int attempts,
              const std::string& due_in) {
  Exec(conn,
       "UPDATE courier.deliveries SET status = $2, attempts = $3, next_attempt_at = now() + $4::interval, "
       "completed_at = CASE WHEN $2 IN ('delivered', 'failed', 'dead_lettered') THEN now() END "
       "WHERE id = $1",
       id, status, attempts, due_in);
}

std::set<std::string> Ids(const std::vector<ClaimedDelivery>& claimed) {
  std::set<std::string> out;
  for (const auto& d : claimed) out.insert(d.id);
  return out;
}

}  // namespace

TEST_CASE("claim_due claims only due rows and leases them to the worker") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"order.*"}, true, "fast", "https://hooks.example.test/acme");
  Exec(conn,
       "INSERT INTO courier.subscription_secrets (subscription_id, sealed_secret, last4, created_at, expires_at, "
       "revoked_at) VALUES "
       "($1, 'sealed-oldest', '0001', now() - interval '3 hours', now() + interval '1 hour', NULL), "
       "($1, 'sealed-newest', '0002', now() - interval '1 hour', NULL, NULL), "
       "($1, 'sealed-middle', '0003', now() - interval '2 hours', NULL, NULL), "
       "($1, 'sealed-revoked', '0004', now() - interval '10 minutes', NULL, now() - interval '1 minute'), "
       "($1, 'sealed-expired', '0005', now() - interval '20 minutes', now() - interval '1 minute', NULL)",
       sub);

  const auto pending = NewDelivery(conn, "acme", sub, "order.created", R"({"n": 0})");
  const auto retry_due = NewDelivery(conn, "acme", sub, "order.line.added", R"({"n": 1, "s": "x"})");
  const auto retry_future = NewDelivery(conn, "acme", sub, "order.created");
  const auto pending_future = NewDelivery(conn, "acme", sub, "order.created");
  const auto delivered = NewDelivery(conn, "acme", sub, "order.created");
  const auto failed = NewDelivery(conn, "acme", sub, "order.created");
  const auto dead = NewDelivery(conn, "acme", sub, "order.created");
  const auto leased = NewDelivery(conn, "acme", sub, "order.created");
  SetState(conn, retry_due, "retry_scheduled", 2, "-1 second");
  SetState(conn, retry_future, "retry_scheduled", 1, "1 hour");
  SetState(conn, pending_future, "pending", 0, "1 hour");
  SetState(conn, delivered, "delivered", 1, "-1 hour");
  SetState(conn, failed, "failed", 1, "-1 hour");
  SetState(conn, dead, "dead_lettered", 5, "-1 hour");
  Exec(conn, "UPDATE courier.deliveries SET next_attempt_at = now() - interval '1 hour' WHERE id = $1", leased);
  pgtest::Lease(conn, leased, "other");
  Exec(conn, "UPDATE courier.events SET trace_id = 'trace-42' WHERE id = "
             "(SELECT event_id FROM courier.deliveries WHERE id = $1)", retry_due);

  DaemonSession store(db.url());
  const auto before = pgtest::ServerClock(conn);
  const auto claimed = store.Claim("worker-1", 100, 30s);
  const auto after = pgtest::ServerClock(conn);

  REQUIRE(Ids(claimed) == std::set<std::string>{pending, retry_due});
  REQUIRE(claimed.size() == 2);

  // The claimed rows: delivering, leased to worker-1 for 30 s from the claim.
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.delivery_status WHERE id = ANY($1::text[]) AND status = 'delivering' "
              "AND lease_owner = 'worker-1' "
              "AND lease_expires_at BETWEEN $2::timestamptz + interval '30 s' AND $3::timestamptz + interval '30 s'",
              "{" + pending + "," + retry_due + "}", before, after) == 2);
  // The others are exactly as they were.
  const std::map<std::string, std::string> untouched = {
      {retry_future, "retry_scheduled"}, {pending_future, "pending"}, {delivered, "delivered"},
      {failed, "failed"},                {dead, "dead_lettered"},     {leased, "delivering"}};
  for (const auto& [id, status] : untouched) {
    CAPTURE(status);
    const auto row = pgtest::Row(conn, "SELECT status, coalesce(lease_owner, '') FROM courier.delivery_status WHERE id = $1",
                                 id);
    CHECK(row[0].as<std::string>() == status);
    CHECK(row[1].as<std::string>() == (status == "delivering" ? "other" : ""));
  }

  // What a claim returns.
  const ClaimedDelivery& d = claimed[0].id == retry_due ? claimed[0] : claimed[1];
  const auto event_row = pgtest::Row(
      conn,
      "SELECT e.id, (extract(epoch FROM e.created_at) * 1000000)::bigint FROM courier.events e "
      "JOIN courier.deliveries d ON d.event_id = e.id WHERE d.id = $1",
      retry_due);
  CHECK(d.tenant_id == "acme");
  CHECK(d.event_id == event_row[0].as<std::string>());
  CHECK(d.subscription_id == sub);
  CHECK(d.event_type == "order.line.added");
  CHECK(d.payload_json == R"({"n": 1, "s": "x"})");
  CHECK(d.trace_id == "trace-42");
  CHECK(d.url == "https://hooks.example.test/acme");
  CHECK(d.policy_name == "fast");
  CHECK(d.subscription_active);
  CHECK(d.previous_attempts == 2);
  CHECK(d.Attempt() == 3);
  CHECK(d.event_created_us == event_row[1].as<long long>());
  CHECK(d.event_created_at.size() == 27);  // YYYY-MM-DDTHH:MM:SS.uuuuuuZ
  CHECK(d.event_created_at.back() == 'Z');
  // Active secrets only, newest first.
  CHECK(d.sealed_secrets == std::vector<std::string>{"sealed-newest", "sealed-middle", "sealed-oldest"});

  const ClaimedDelivery& p = claimed[0].id == pending ? claimed[0] : claimed[1];
  CHECK(p.previous_attempts == 0);
  CHECK(p.payload_json == R"({"n": 0})");
  CHECK(p.trace_id.empty());
  CHECK(p.event_type == "order.created");

  // Nothing is due any more.
  CHECK(store.Claim("worker-2", 100, 30s).empty());
}

TEST_CASE("claim_due respects the limit") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  for (int i = 0; i < 5; ++i) NewDelivery(conn, "acme", sub);

  DaemonSession store(db.url());
  std::set<std::string> seen;
  for (const std::size_t expected : {2u, 2u, 1u, 0u}) {
    const auto batch = store.Claim("worker-1", 2, 10s);
    CHECK(batch.size() == expected);
    for (const auto& d : batch) CHECK(seen.insert(d.id).second);
  }
  CHECK(seen.size() == 5);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner = 'worker-1'") == 5);
}

TEST_CASE("claim_due still claims a delivery whose subscription was deactivated, and says so") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto id = NewDelivery(conn, "acme", sub);
  Exec(conn, "UPDATE courier.subscriptions SET active = false WHERE id = $1", sub);
  DaemonSession store(db.url());
  const auto claimed = store.Claim("worker-1", 10, 10s);
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].id == id);
  CHECK_FALSE(claimed[0].subscription_active);
}

TEST_CASE("concurrent claimers never get the same delivery") {
  constexpr int kDeliveries = 2000;
  constexpr int kWorkers = 4;
  TestDb db;
  pqxx::connection conn(db.url());
  AddSubscription(conn, "acme", {"*"});
  Exec(conn, "INSERT INTO courier.events (tenant_id, event_type, payload) "
             "SELECT 'acme', 'load.test', jsonb_build_object('i', i) FROM generate_series(1, $1) AS i",
       kDeliveries);
  REQUIRE(Count(conn, "SELECT count(*) FROM courier.deliveries WHERE status = 'pending'") == kDeliveries);

  std::vector<std::vector<std::string>> claimed(kWorkers);
  std::vector<std::exception_ptr> errors(kWorkers);
  std::latch start(kWorkers);
  {
    std::vector<std::jthread> threads;
    for (int w = 0; w < kWorkers; ++w) {
      threads.emplace_back([&, w] {
        try {
          DaemonSession store(db.url());
          const std::string worker = "worker-" + std::to_string(w);
          start.arrive_and_wait();
          while (true) {
            const auto batch = store.Claim(worker, 50, 60s);
            if (batch.empty()) break;
            for (const auto& d : batch) claimed[w].push_back(d.id);
          }
        } catch (...) {
          errors[w] = std::current_exception();
        }
      });
    }
  }
  for (const auto& e : errors) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        FAIL("claimer thread failed: " << std::string(ex.what()));
      }
    }
  }

  std::map<std::string, int> times;
  std::size_t total = 0;
  for (const auto& ids : claimed) {
    total += ids.size();
    for (const auto& id : ids) ++times[id];
  }
  int duplicates = 0;
  for (const auto& [id, n] : times) duplicates += n > 1 ? 1 : 0;
  CHECK(duplicates == 0);
  CHECK(total == static_cast<std::size_t>(kDeliveries));
  CHECK(times.size() == static_cast<std::size_t>(kDeliveries));

  // The database agrees on who holds what.
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NULL") == 0);
  for (int w = 0; w < kWorkers; ++w) {
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner = $1",
                "worker-" + std::to_string(w)) == static_cast<long long>(claimed[w].size()));
  }
}

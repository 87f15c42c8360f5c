// DeliveriesStore::Record (record_outcomes): state transitions, attempt rows, lease checks and
// quarantine of a row that breaks a constraint.
#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <set>
#include <string>
#include <vector>

#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::model::DeliveryOutcome;
using pgcourier::model::DeliveryStatus;
using pgcourier::model::FailureClass;
using pgtest::DaemonSession;
using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::NewDelivery;
using pgtest::Row;
using pgtest::TestDb;

constexpr std::int64_t kStartedUs = 1700000000123456;  // 2023-11-14T22:13:20.123456Z

DeliveryOutcome Outcome(const std::string& id, int attempt, DeliveryStatus next, std::string outcome_name) {
  DeliveryOutcome o;
  o.delivery_id = id;
  o.attempt = attempt;
  o.next_status = next;
  o.outcome = std::move(outcome_name);
  o.started_us = kStartedUs;
  o.duration_ms = 12.5;
  return o;
}

std::set<std::string> AsSet(const std::vector<std::string>& ids) { return {ids.begin(), ids.end()}; }

// Claims exactly the given deliveries for `worker`.
void ClaimAll(DaemonSession& store, const std::string& worker, std::size_t expected) {
  REQUIRE(store.Claim(worker, 100, 60s).size() == expected);
}

}  // namespace

TEST_CASE("record_outcomes applies each transition and writes one attempt row") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto ok = NewDelivery(conn, "acme", sub);
  const auto retry = NewDelivery(conn, "acme", sub);
  const auto failed = NewDelivery(conn, "acme", sub);
  const auto dead = NewDelivery(conn, "acme", sub);
  DaemonSession store(db.url());
  ClaimAll(store, "worker-1", 4);

  auto delivered_o = Outcome(ok, 1, DeliveryStatus::kDelivered, "delivered");
  delivered_o.status_code = 200;
  delivered_o.response_excerpt = R"({"ok": true, "quote": "\" and \\"})";
  auto retry_o = Outcome(retry, 1, DeliveryStatus::kRetryScheduled, "http_error");
  retry_o.status_code = 503;
  retry_o.retry_delay_ms = 30000;
  retry_o.failure_class = FailureClass::kTransient;
  retry_o.retryable = true;
  retry_o.error_summary = "HTTP 503 Service Unavailable";
  auto failed_o = Outcome(failed, 1, DeliveryStatus::kFailed, "http_error");
  failed_o.status_code = 400;
  failed_o.failure_class = FailureClass::kValidation;
  failed_o.error_summary = "HTTP 400 Bad Request";
  auto dead_o = Outcome(dead, 1, DeliveryStatus::kDeadLettered, "timeout");
  dead_o.failure_class = FailureClass::kPoison;
  dead_o.error_summary = "timed out";

  const std::vector<DeliveryOutcome> outcomes = {delivered_o, retry_o, failed_o, dead_o};
  const auto before = pgtest::ServerClock(conn);
  const auto applied = store.deliveries->Record("worker-1", outcomes).applied;
  const auto after = pgtest::ServerClock(conn);
  CHECK(AsSet(applied) == std::set<std::string>{ok, retry, failed, dead});
  CHECK(applied.size() == 4);

  const std::string kDelivery =
      "SELECT status, attempts, lease_owner IS NULL AND lease_expires_at IS NULL, completed_at IS NOT NULL, "
      "coalesce(last_status_code, -1), coalesce(last_error, '') FROM courier.delivery_status WHERE id = $1";
  const std::string kAttempt =
      "SELECT outcome, coalesce(status_code, -1), duration_ms, coalesce(error_class, ''), retryable, "
      "coalesce(error_summary, ''), coalesce(response_excerpt, ''), worker, "
      "(extract(epoch FROM started_at) * 1000000)::bigint FROM courier.delivery_attempts "
      "WHERE delivery_id = $1 AND attempt = 1";

  SUBCASE("delivering -> delivered") {
    const auto d = Row(conn, kDelivery, ok);
    CHECK(d[0].as<std::string>() == "delivered");
    CHECK(d[1].as<int>() == 1);
    CHECK(d[2].as<bool>());
    CHECK(d[3].as<bool>());
    CHECK(d[4].as<int>() == 200);
    CHECK(d[5].as<std::string>().empty());
    const auto a = Row(conn, kAttempt, ok);
    CHECK(a[0].as<std::string>() == "delivered");
    CHECK(a[1].as<int>() == 200);
    CHECK(a[2].as<double>() == doctest::Approx(12.5));
    CHECK(a[3].as<std::string>().empty());
    CHECK_FALSE(a[4].as<bool>());
    CHECK(a[5].as<std::string>().empty());
    CHECK(a[6].as<std::string>() == R"({"ok": true, "quote": "\" and \\"})");
    CHECK(a[7].as<std::string>() == "worker-1");
    CHECK(a[8].as<long long>() == kStartedUs);
    // The outcome statement wrote the queue itself: a finished delivery leaves it.
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE delivery_id = $1", ok) == 0);
  }
  SUBCASE("delivering -> retry_scheduled") {
    const auto d = Row(conn, kDelivery, retry);
    CHECK(d[0].as<std::string>() == "retry_scheduled");
    CHECK(d[1].as<int>() == 1);
    CHECK(d[2].as<bool>());
    CHECK_FALSE(d[3].as<bool>());
    CHECK(d[4].as<int>() == 503);
    CHECK(d[5].as<std::string>() == "HTTP 503 Service Unavailable");
    CHECK(Count(conn,
                "SELECT count(*) FROM courier.deliveries WHERE id = $1 AND next_attempt_at "
                "BETWEEN $2::timestamptz + interval '30 s' AND $3::timestamptz + interval '30 s'",
                retry, before, after) == 1);
    const auto a = Row(conn, kAttempt, retry);
    CHECK(a[0].as<std::string>() == "http_error");
    CHECK(a[1].as<int>() == 503);
    CHECK(a[3].as<std::string>() == "transient");
    CHECK(a[4].as<bool>());
    CHECK(a[5].as<std::string>() == "HTTP 503 Service Unavailable");
    // The queue row is released at the new attempt count, due when the delivery says.
    CHECK(Count(conn,
                "SELECT count(*) FROM courier.delivery_queue q JOIN courier.deliveries d ON d.id = q.delivery_id "
                "WHERE q.delivery_id = $1 AND q.lease_owner IS NULL AND q.lease_expires_at IS NULL "
                "AND q.attempts = 1 AND q.retry AND q.due_at = d.next_attempt_at",
                retry) == 1);
    // Not due before its delay is over.
    CHECK(store.Claim("worker-2", 100, 60s).empty());
    // The outcome transaction's courier.queue_maintained ended with it: any
    // later write of the delivery keeps the queue in step by the trigger.
    pgtest::Exec(conn, "UPDATE courier.deliveries SET status = 'failed' WHERE id = $1", retry);
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE delivery_id = $1", retry) == 0);
  }
  SUBCASE("delivering -> failed") {
    const auto d = Row(conn, kDelivery, failed);
    CHECK(d[0].as<std::string>() == "failed");
    CHECK(d[1].as<int>() == 1);
    CHECK(d[2].as<bool>());
    CHECK(d[3].as<bool>());
    CHECK(d[4].as<int>() == 400);
    CHECK(d[5].as<std::string>() == "HTTP 400 Bad Request");
    const auto a = Row(conn, kAttempt, failed);
    CHECK(a[3].as<std::string>() == "validation");
    CHECK_FALSE(a[4].as<bool>());
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE delivery_id = $1", failed) == 0);
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_dead_letters WHERE delivery_id = $1", failed) == 0);
  }
  SUBCASE("delivering -> dead_lettered") {
    const auto d = Row(conn, kDelivery, dead);
    CHECK(d[0].as<std::string>() == "dead_lettered");
    CHECK(d[1].as<int>() == 1);
    CHECK(d[2].as<bool>());
    CHECK(d[3].as<bool>());
    CHECK(d[4].as<int>() == -1);
    CHECK(d[5].as<std::string>() == "timed out");
    const auto a = Row(conn, kAttempt, dead);
    CHECK(a[0].as<std::string>() == "timeout");
    CHECK(a[1].as<int>() == -1);
    CHECK(a[3].as<std::string>() == "poison");
    CHECK(Count(conn, "SELECT count(*) FROM courier.dead_letters WHERE delivery_id = $1", dead) == 1);
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_dead_letters WHERE delivery_id = $1", dead) == 1);
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE delivery_id = $1", dead) == 0);
  }
  SUBCASE("recording the same attempt again applies nothing") {
    CHECK(store.deliveries->Record("worker-1", outcomes).applied.empty());
    CHECK(store.deliveries->Record("worker-1", {retry_o}).applied.empty());
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts") == 4);
    CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries WHERE attempts = 1") == 4);
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NOT NULL") == 0);
  }
}

TEST_CASE("record_outcomes ignores an outcome from a worker that does not hold the lease") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto id = NewDelivery(conn, "acme", sub);
  DaemonSession owner(db.url());
  DaemonSession intruder(db.url());
  ClaimAll(owner, "worker-1", 1);

  auto o = Outcome(id, 1, DeliveryStatus::kDelivered, "delivered");
  o.status_code = 200;
  CHECK(intruder.deliveries->Record("worker-2", {o}).applied.empty());
  const auto d = Row(conn, "SELECT status, lease_owner, attempts FROM courier.delivery_status WHERE id = $1", id);
  CHECK(d[0].as<std::string>() == "delivering");
  CHECK(d[1].as<std::string>() == "worker-1");
  CHECK(d[2].as<int>() == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts") == 0);

  // A wrong attempt number from the owner is not applied either.
  auto wrong_attempt = o;
  wrong_attempt.attempt = 2;
  CHECK(owner.deliveries->Record("worker-1", {wrong_attempt}).applied.empty());
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts") == 0);

  // The owner's own outcome still applies.
  CHECK(owner.deliveries->Record("worker-1", {o}).applied == std::vector<std::string>{id});
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT status FROM courier.deliveries WHERE id = $1", id) == "delivered");
}

namespace {

// Three claimed deliveries; the middle outcome carries `bad_summary`
// (longer than the 512 bytes delivery_attempts allows).
void CheckQuarantine(const std::string& bad_summary) {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto first = NewDelivery(conn, "acme", sub);
  const auto bad = NewDelivery(conn, "acme", sub);
  const auto last = NewDelivery(conn, "acme", sub);
  DaemonSession store(db.url());
  ClaimAll(store, "worker-1", 3);

  auto first_o = Outcome(first, 1, DeliveryStatus::kDelivered, "delivered");
  first_o.status_code = 204;
  auto bad_o = Outcome(bad, 1, DeliveryStatus::kRetryScheduled, "http_error");
  bad_o.status_code = 500;
  bad_o.retry_delay_ms = 1000;
  bad_o.failure_class = FailureClass::kTransient;
  bad_o.retryable = true;
  bad_o.error_summary = bad_summary;
  auto last_o = Outcome(last, 1, DeliveryStatus::kFailed, "http_error");
  last_o.status_code = 410;
  last_o.failure_class = FailureClass::kValidation;
  last_o.error_summary = "HTTP 410 Gone";

  std::vector<std::string> applied;
  REQUIRE_NOTHROW(applied = store.deliveries->Record("worker-1", {first_o, bad_o, last_o}).applied);
  const auto ids = AsSet(applied);
  CHECK(ids.count(first) == 1);
  CHECK(ids.count(last) == 1);

  // The good rows are recorded as if nothing happened.
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT status FROM courier.deliveries WHERE id = $1", first) ==
        "delivered");
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT status FROM courier.deliveries WHERE id = $1", last) == "failed");
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts WHERE delivery_id IN ($1, $2)", first, last) ==
        2);
  // The bad row ends failed, lease released, with the reason.
  const auto d = Row(conn,
                     "SELECT status, attempts, lease_owner IS NULL, completed_at IS NOT NULL, coalesce(last_error, '') "
                     "FROM courier.delivery_status WHERE id = $1",
                     bad);
  CHECK(d[0].as<std::string>() == "failed");
  CHECK(d[1].as<int>() == 1);
  CHECK(d[2].as<bool>());
  CHECK(d[3].as<bool>());
  const auto last_error = d[4].as<std::string>();
  CAPTURE(last_error);
  CHECK(last_error.find("outcome could not be recorded") != std::string::npos);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts WHERE delivery_id = $1", bad) == 1);
}

}  // namespace

TEST_CASE("a row that breaks a constraint is quarantined and the rest of the batch is recorded") {
  CheckQuarantine(std::string(600, 'x'));
}

namespace {

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

// The quarantine reason quotes the database's error, whose DETAIL shows the
// failing row (each value clipped to 64 bytes on a character boundary).
// With multi-byte text in that row the reason must still be valid UTF-8
// wherever it is shortened, or the quarantine itself fails. The duration's
// width shifts where the reason is cut, so some shift cuts inside a 'ü'.
TEST_CASE("quarantine works when the error it quotes has multi-byte text where it is shortened") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const std::string worker = "wörker-" + Repeat("ü", 40);  // worker_id: any text without control characters
  DaemonSession store(db.url());
  double duration = 1.5;
  for (int shift = 0; shift < 8; ++shift, duration = duration * 10 + 1) {
    CAPTURE(shift);
    const auto bad = NewDelivery(conn, "acme", sub);
    const auto good = NewDelivery(conn, "acme", sub);
    REQUIRE(store.Claim(worker, 10, 60s).size() == 2);

    auto bad_o = Outcome(bad, 1, DeliveryStatus::kFailed, "http_error");
    bad_o.status_code = 500;
    bad_o.duration_ms = duration;
    bad_o.failure_class = FailureClass::kTransient;
    bad_o.error_summary = Repeat("ü", 300);  // 600 bytes: breaks the 512-byte CHECK
    bad_o.response_excerpt = Repeat("ü", 100);
    auto good_o = Outcome(good, 1, DeliveryStatus::kDelivered, "delivered");
    good_o.status_code = 200;

    bool threw = false;
    try {
      const auto applied = store.deliveries->Record(worker, {bad_o, good_o}).applied;
      CHECK(AsSet(applied).count(good) == 1);
    } catch (const std::exception& e) {
      threw = true;
      FAIL_CHECK("Record threw: " << std::string(e.what()));
    }
    // The good row of the batch is recorded, the bad one quarantined.
    CHECK(pgtest::Scalar<std::string>(conn, "SELECT status FROM courier.deliveries WHERE id = $1", good) ==
          "delivered");
    const auto d = Row(conn, "SELECT status, coalesce(last_error, '') FROM courier.deliveries WHERE id = $1", bad);
    const auto last_error = d[1].as<std::string>();
    CAPTURE(last_error);
    CHECK(d[0].as<std::string>() == "failed");
    CHECK(last_error.find("outcome could not be recorded") != std::string::npos);
    if (threw) break;  // one failing round shows it
    // Leave nothing claimed for the next round.
    pgtest::Exec(conn, "UPDATE courier.deliveries d SET status = 'failed' FROM courier.delivery_queue q "
                       "WHERE q.delivery_id = d.id AND q.lease_owner IS NOT NULL");
  }
}

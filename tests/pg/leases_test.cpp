// Lease rescue (DeliveriesStore::FindExpired, then Record fenced by the dead
// owner and the expiry) and DeliveriesStore::Release.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::model::DeliveryOutcome;
using pgcourier::model::DeliveryStatus;
using pgcourier::model::FailureClass;
using pgcourier::store::ExpiredLease;
using pgcourier::store::Release;
using pgtest::DaemonSession;
using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::Exec;
using pgtest::NewDelivery;
using pgtest::Row;
using pgtest::TestDb;

// What the lane's rescue decision does, roughly: retry in 5 s, or dead-letter.
DeliveryOutcome LeaseExpired(const ExpiredLease& lease, DeliveryStatus next) {
  DeliveryOutcome o;
  o.delivery_id = lease.delivery_id;
  o.expected_owner = lease.lease_owner;
  o.rescue = true;
  o.attempt = lease.previous_attempts + 1;
  o.next_status = next;
  if (next == DeliveryStatus::kRetryScheduled) o.retry_delay_ms = 5000;
  o.outcome = "lease_expired";
  o.failure_class = FailureClass::kTransient;
  o.retryable = next == DeliveryStatus::kRetryScheduled;
  o.error_summary = "lease held by " + lease.lease_owner + " expired";
  o.started_us = 1700000000000000;
  return o;
}

// The rescue as the lane does it: read the expired leases, decide, write the
// outcomes for `worker` fenced by each dead owner. Returns how many applied.
template <typename Decide>
int Rescue(DaemonSession& store, const std::string& worker, int limit, Decide&& decide) {
  std::vector<DeliveryOutcome> outcomes;
  for (const auto& lease : store.deliveries->FindExpired(limit)) outcomes.push_back(decide(lease));
  return static_cast<int>(store.deliveries->Record(worker, outcomes).applied.size());
}

}  // namespace

TEST_CASE("a rescue recovers an expired lease for another worker and fences the old owner") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"}, true, "slow");
  const auto expired = NewDelivery(conn, "acme", sub);
  const auto live = NewDelivery(conn, "acme", sub);
  // `expired` already had two attempts.
  Exec(conn, "UPDATE courier.deliveries SET status = 'retry_scheduled', attempts = 2, "
             "next_attempt_at = now() - interval '1 s' WHERE id = $1", expired);

  DaemonSession old_owner(db.url());
  REQUIRE(old_owner.Claim("worker-old", 10, 60s).size() == 2);
  Exec(conn, "UPDATE courier.delivery_queue SET lease_expires_at = now() - interval '1 s' WHERE delivery_id = $1",
       expired);

  DaemonSession rescuer(db.url());
  std::vector<ExpiredLease> seen;
  const int recovered = Rescue(rescuer, "worker-rescuer", 10, [&](const ExpiredLease& lease) {
    seen.push_back(lease);
    return LeaseExpired(lease, DeliveryStatus::kRetryScheduled);
  });
  CHECK(recovered == 1);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].delivery_id == expired);
  CHECK(seen[0].lease_owner == "worker-old");
  CHECK(seen[0].policy_name == "slow");
  CHECK(seen[0].previous_attempts == 2);

  const auto d = Row(conn,
                     "SELECT status, attempts, lease_owner IS NULL AND lease_expires_at IS NULL, "
                     "next_attempt_at > now() + interval '4 s', coalesce(last_error, '') "
                     "FROM courier.delivery_status WHERE id = $1",
                     expired);
  CHECK(d[0].as<std::string>() == "retry_scheduled");
  CHECK(d[1].as<int>() == 3);
  CHECK(d[2].as<bool>());
  CHECK(d[3].as<bool>());
  CHECK(d[4].as<std::string>() == "lease held by worker-old expired");
  const auto a = Row(conn,
                     "SELECT attempt, outcome, worker, coalesce(error_class, '') FROM courier.delivery_attempts "
                     "WHERE delivery_id = $1",
                     expired);
  CHECK(a[0].as<int>() == 3);
  CHECK(a[1].as<std::string>() == "lease_expired");
  CHECK(a[2].as<std::string>() == "worker-rescuer");
  CHECK(a[3].as<std::string>() == "transient");

  // The lease that has not expired is untouched.
  const auto l = Row(conn, "SELECT status, lease_owner, attempts FROM courier.delivery_status WHERE id = $1", live);
  CHECK(l[0].as<std::string>() == "delivering");
  CHECK(l[1].as<std::string>() == "worker-old");
  CHECK(l[2].as<int>() == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts WHERE delivery_id = $1", live) == 0);

  // The old owner's late result for the rescued attempt is rejected.
  DeliveryOutcome late;
  late.delivery_id = expired;
  late.attempt = 3;
  late.next_status = DeliveryStatus::kDelivered;
  late.status_code = 200;
  late.outcome = "delivered";
  late.started_us = 1700000000000000;
  CHECK(old_owner.deliveries->Record("worker-old", {late}).applied.empty());
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT status FROM courier.deliveries WHERE id = $1", expired) ==
        "retry_scheduled");
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts WHERE delivery_id = $1", expired) == 1);

  // Nothing else is expired.
  int calls = 0;
  CHECK(Rescue(rescuer, "worker-rescuer", 10, [&](const ExpiredLease& lease) {
    ++calls;
    return LeaseExpired(lease, DeliveryStatus::kFailed);
  }) == 0);
  CHECK(calls == 0);
}

TEST_CASE("a lease claimed for 1 ms expires and is rescued with the status decide returns") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto id = NewDelivery(conn, "acme", sub);
  DaemonSession old_owner(db.url());
  REQUIRE(old_owner.Claim("worker-old", 10, 1ms).size() == 1);
  std::this_thread::sleep_for(20ms);

  DaemonSession rescuer(db.url());
  std::vector<ExpiredLease> seen;
  CHECK(Rescue(rescuer, "worker-rescuer", 10, [&](const ExpiredLease& lease) {
    seen.push_back(lease);
    return LeaseExpired(lease, DeliveryStatus::kDeadLettered);
  }) == 1);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].lease_owner == "worker-old");
  CHECK(seen[0].previous_attempts == 0);
  const auto d = Row(conn,
                     "SELECT status, attempts, completed_at IS NOT NULL FROM courier.deliveries WHERE id = $1", id);
  CHECK(d[0].as<std::string>() == "dead_lettered");
  CHECK(d[1].as<int>() == 1);
  CHECK(d[2].as<bool>());
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT worker FROM courier.delivery_attempts WHERE delivery_id = $1",
                                    id) == "worker-rescuer");

  DeliveryOutcome late;
  late.delivery_id = id;
  late.attempt = 1;
  late.next_status = DeliveryStatus::kDelivered;
  late.outcome = "delivered";
  CHECK(old_owner.deliveries->Record("worker-old", {late}).applied.empty());
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT status FROM courier.deliveries WHERE id = $1", id) ==
        "dead_lettered");
}

TEST_CASE("a release gives claimed deliveries back without recording an attempt") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto fresh = NewDelivery(conn, "acme", sub);
  const auto retried = NewDelivery(conn, "acme", sub);
  Exec(conn, "UPDATE courier.deliveries SET status = 'retry_scheduled', attempts = 2, "
             "next_attempt_at = now() - interval '1 s' WHERE id = $1", retried);
  DaemonSession store(db.url());
  REQUIRE(store.Claim("worker-1", 10, 60s).size() == 2);

  // Another worker cannot release them.
  DaemonSession other(db.url());
  CHECK(other.deliveries->Release("worker-2", {{fresh, 0, "not mine"}, {retried, 0, "not mine"}}) == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_status WHERE status = 'delivering' "
                    "AND lease_owner = 'worker-1'") == 2);

  const auto before = pgtest::ServerClock(conn);
  CHECK(store.deliveries->Release("worker-1", {{fresh, 0, "shutting down"}, {retried, 10000, "held: unknown policy"}}) ==
        2);
  const auto after = pgtest::ServerClock(conn);

  const std::string kQuery =
      "SELECT status, attempts, lease_owner IS NULL AND lease_expires_at IS NULL, coalesce(last_error, ''), "
      "next_attempt_at BETWEEN $2::timestamptz + $4::interval AND $3::timestamptz + $4::interval "
      "FROM courier.delivery_status WHERE id = $1";
  const auto f = Row(conn, kQuery, fresh, before, after, "0 s");
  CHECK(f[0].as<std::string>() == "pending");
  CHECK(f[1].as<int>() == 0);
  CHECK(f[2].as<bool>());
  CHECK(f[3].as<std::string>() == "shutting down");
  CHECK(f[4].as<bool>());
  const auto r = Row(conn, kQuery, retried, before, after, "10 s");
  CHECK(r[0].as<std::string>() == "retry_scheduled");
  CHECK(r[1].as<int>() == 2);
  CHECK(r[2].as<bool>());
  CHECK(r[3].as<std::string>() == "held: unknown policy");
  CHECK(r[4].as<bool>());
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts") == 0);

  // Released rows are claimable again (the one without a delay at once).
  const auto again = store.Claim("worker-3", 10, 60s);
  REQUIRE(again.size() == 1);
  CHECK(again[0].id == fresh);
  CHECK(again[0].previous_attempts == 0);
}

TEST_CASE("a rescue outcome does not apply once the lease is no longer expired (renewed meanwhile)") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto id = NewDelivery(conn, "acme", sub);
  DaemonSession owner(db.url());
  REQUIRE(owner.Claim("worker-old", 10, 1ms).size() == 1);
  std::this_thread::sleep_for(20ms);
  DaemonSession rescuer(db.url());
  const auto expired = rescuer.deliveries->FindExpired(10);
  REQUIRE(expired.size() == 1);
  // Between the rescuer's read and its write, the owner's lease is renewed.
  Exec(conn, "UPDATE courier.delivery_queue SET lease_expires_at = now() + interval '1 min' WHERE delivery_id = $1", id);
  CHECK(rescuer.deliveries->Record("worker-rescuer", {LeaseExpired(expired[0], DeliveryStatus::kRetryScheduled)})
            .applied.empty());
  const auto d = Row(conn, "SELECT status, lease_owner, attempts FROM courier.delivery_status WHERE id = $1", id);
  CHECK(d[0].as<std::string>() == "delivering");
  CHECK(d[1].as<std::string>() == "worker-old");
  CHECK(d[2].as<int>() == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts WHERE delivery_id = $1", id) == 0);
}

TEST_CASE("a run rescue applies to an expired run lease, but not to one renewed between the read and the write") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto connection = pgtest::Scalar<std::string>(
      conn, "INSERT INTO courier.connections (tenant_id, provider, base_url) VALUES ('acme', 'sms', 'https://api.test') "
            "RETURNING id");
  const auto renewed = pgtest::Scalar<std::string>(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send')", connection);
  const auto expired = pgtest::Scalar<std::string>(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send')", connection);
  DaemonSession owner(db.url());
  REQUIRE(owner.runs->Claim({{"worker-old", 10, 1ms, {}}, {}}).size() == 2);
  std::this_thread::sleep_for(20ms);
  DaemonSession rescuer(db.url());
  const auto leases = rescuer.runs->FindExpired(10);
  REQUIRE(leases.size() == 2);
  Exec(conn, "UPDATE courier.runs SET lease_expires_at = now() + interval '1 min' WHERE id = $1", renewed);
  std::vector<pgcourier::model::RunOutcome> outcomes;
  for (const auto& lease : leases) {
    pgcourier::model::RunOutcome o;
    o.run_id = lease.run_id;
    o.expected_owner = lease.lease_owner;
    o.rescue = true;
    o.attempt = lease.previous_attempts + 1;
    o.next_status = pgcourier::model::RunStatus::kPending;
    o.retry_delay_ms = 0;
    o.outcome = "lease_expired";
    o.failure_class = FailureClass::kTransient;
    o.error_code = "lease_expired";
    o.next_action = pgcourier::model::NextAction::kRetry;
    outcomes.push_back(o);
  }
  CHECK(rescuer.runs->Record("worker-rescuer", outcomes) == std::vector<std::string>{expired});
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT status FROM courier.runs WHERE id = $1", renewed) == "running");
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT status FROM courier.runs WHERE id = $1", expired) == "pending");
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts WHERE run_id = $1", renewed) == 0);
}

TEST_CASE("after the database clock steps back, the shift moves what the old clock wrote, nothing newer, once") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"}, true, "default");
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(NewDelivery(conn, "acme", sub));
  // The clock went back an hour: the old clock's rows lie an hour ahead of now().
  Exec(conn, "UPDATE courier.deliveries SET next_attempt_at = now() + interval '1 hour', "
             "updated_at = now() + interval '1 hour' WHERE id = $1", ids[0]);  // written before the step
  Exec(conn, "UPDATE courier.deliveries SET next_attempt_at = now() + interval '1 hour' WHERE id = $1",
       ids[1]);  // a retry an hour out, scheduled since the step: stays
  Exec(conn, "UPDATE courier.delivery_queue SET lease_owner = 'w', "
             "lease_expires_at = now() + interval '1 hour 3 seconds' WHERE delivery_id = $1", ids[2]);  // old clock
  Exec(conn, "UPDATE courier.delivery_queue SET lease_owner = 'w', lease_expires_at = now() + interval '3 seconds' "
             "WHERE delivery_id = $1", ids[3]);  // renewed since the step: stays

  DaemonSession leader(db.url());
  const pgcourier::store::ScheduleShift shift{std::chrono::hours(1), 6s, "", 3};
  const auto first = leader.deliveries->ShiftSchedules(shift);
  CHECK(first.visited == 3);  // a batch: 3 rows in id order
  auto rest = shift;
  rest.after = first.last_id;
  const auto second = leader.deliveries->ShiftSchedules(rest);
  CHECK(second.visited == 1);  // fewer than asked: the pass is over
  CHECK(first.due_times + second.due_times == 1);
  CHECK(first.leases + second.leases == 1);

  auto moved = [&](const std::string& sql, const std::string& id) { return pgtest::Scalar<bool>(conn, sql, id); };
  CHECK(moved("SELECT q.due_at <= now() + interval '1 second' AND d.next_attempt_at = q.due_at "
              "AND d.updated_at <= now() + interval '1 second' "
              "FROM courier.delivery_queue q JOIN courier.deliveries d ON d.id = q.delivery_id "
              "WHERE q.delivery_id = $1", ids[0]));
  CHECK(moved("SELECT due_at > now() + interval '59 minutes' FROM courier.delivery_queue WHERE delivery_id = $1",
              ids[1]));
  for (const auto& id : {ids[2], ids[3]}) {
    CHECK(moved("SELECT lease_expires_at BETWEEN now() + interval '2 seconds' AND now() + interval '4 seconds' "
                "FROM courier.delivery_queue WHERE delivery_id = $1", id));
  }
  // Once: what moved now reads as written on the new clock.
  const auto again = leader.deliveries->ShiftSchedules(pgcourier::store::ScheduleShift{std::chrono::hours(1), 6s, "", 10});
  CHECK(again.visited == 4);
  CHECK(again.due_times == 0);
  CHECK(again.leases == 0);
}

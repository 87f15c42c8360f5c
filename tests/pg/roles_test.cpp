// Least privilege: the roles created by sql/schema/90_roles.sql, exercised by
// logging in as members of each (trust authentication on the test cluster).
#include <doctest/doctest.h>

#include <random>

#include "test_db.hpp"

using pgtest::LoginRole;
using pgtest::Refused;


TEST_CASE("a producer publishes only for its own tenants and cannot read events, secrets or change deliveries") {
  pgtest::TestDb db;
  pqxx::connection admin(db.url());
  const std::string sub = pgtest::AddSubscription(admin, "acme", {"*"});
  pgtest::AddSubscription(admin, "globex", {"*"});
  pgtest::Exec(admin, "INSERT INTO courier.subscription_secrets (subscription_id, sealed_secret, last4) "
                      "VALUES ($1, 'v1:sealed', 'abcd')", sub);
  LoginRole producer(db, "courier_producer");
  pgtest::Exec(admin, "INSERT INTO courier.producer_tenants VALUES ($1, 'acme')", producer.name());

  pqxx::connection conn(producer.url());
  const std::string event = pgtest::Scalar<std::string>(conn, "SELECT courier.publish('acme', 'order.created', '{}')");
  CHECK(event.rfind("evt_", 0) == 0);
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.deliveries WHERE event_id = $1", event) == 1);
  CHECK(Refused(conn, "SELECT courier.publish('globex', 'order.created', '{}')"));
  CHECK(Refused(conn, "INSERT INTO courier.events (tenant_id, event_type) VALUES ('globex', 'x')"));
  CHECK(Refused(conn, "SELECT * FROM courier.events"));
  CHECK(Refused(conn, "SELECT * FROM courier.subscription_secrets"));
  CHECK(Refused(conn, "SELECT * FROM courier.subscriptions"));
  CHECK(Refused(conn, "UPDATE courier.deliveries SET status = 'delivered'"));
  CHECK(Refused(conn, "SELECT courier.replay_deliveries()"));
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.events WHERE tenant_id = 'globex'") == 0);
}

TEST_CASE("an operator reads the status views and pauses, but cannot read secrets or edit tables") {
  pgtest::TestDb db;
  pqxx::connection admin(db.url());
  const std::string sub = pgtest::AddSubscription(admin, "acme", {"*"});
  pgtest::Publish(admin, "acme", "order.created");
  LoginRole operator_role(db, "courier_operator");
  pqxx::connection conn(operator_role.url());
  CHECK(pgtest::Count(conn, "SELECT count(*) FROM courier.delivery_status") == 1);
  CHECK(pgtest::Count(conn, "SELECT count(*) FROM courier.subscription_health") == 1);
  CHECK(pgtest::Scalar<bool>(conn, "SELECT courier.pause_subscription($1, 'maintenance')", sub));
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.subscriptions WHERE paused_at IS NOT NULL") == 1);
  CHECK(pgtest::Scalar<int>(conn, "SELECT courier.resume_subscription($1)", sub) == 1);
  CHECK(Refused(conn, "SELECT * FROM courier.subscription_secrets"));
  CHECK(Refused(conn, "UPDATE courier.deliveries SET status = 'failed'"));
  CHECK(Refused(conn, "SELECT courier.publish('acme', 'x', '{}')"));
}

TEST_CASE("the daemon role has every right the delivery loop and maintenance need") {
  pgtest::TestDb db;
  pqxx::connection admin(db.url());
  const std::string sub = pgtest::AddSubscription(admin, "acme", {"*"});
  for (int i = 0; i < 3; ++i) pgtest::Publish(admin, "acme", "order.created");
  LoginRole daemon(db, "courier_daemon");
  for (int i = 0; i < 3; ++i) pgtest::Publish(admin, "acme", "order.created");
  pgtest::DaemonSession store(daemon.url());
  CHECK(store.session.CheckSchema().missing.empty());
  store.session.Listen({"courier_deliveries", "courier_runs"});
  const auto claimed = store.Claim("d1", 10, std::chrono::seconds(30));
  REQUIRE(claimed.size() == 6);
  CHECK(store.deliveries->RenewLeases("d1", {claimed[0].id, claimed[1].id}, std::chrono::seconds(30)) == 2);
  // One outcome of each kind, written by the outcome statement itself (a
  // refused write would be quarantined as 'failed' instead).
  using pgcourier::model::DeliveryStatus;
  std::vector<pgcourier::model::DeliveryOutcome> outcomes;
  const DeliveryStatus next[] = {DeliveryStatus::kDelivered, DeliveryStatus::kRetryScheduled,
                                 DeliveryStatus::kDeadLettered, DeliveryStatus::kFailed};
  for (int i = 0; i < 4; ++i) {
    pgcourier::model::DeliveryOutcome o;
    o.delivery_id = claimed[static_cast<std::size_t>(i)].id;
    o.attempt = 1;
    o.next_status = next[i];
    o.status_code = i == 0 ? 200 : 503;
    o.outcome = i == 0 ? "delivered" : "http_error";
    if (next[i] == DeliveryStatus::kRetryScheduled) o.retry_delay_ms = 60000;
    outcomes.push_back(o);
  }
  CHECK(store.deliveries->Record("d1", outcomes).applied.size() == 4);
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.delivery_attempts WHERE outcome = 'record_error'") == 0);
  CHECK(pgtest::Scalar<std::string>(admin, "SELECT string_agg(status, ',' ORDER BY status) FROM courier.deliveries "
                                           "WHERE attempts = 1") == "dead_lettered,delivered,failed,retry_scheduled");
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.delivery_dead_letters") == 1);
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.delivery_queue") == 3);
  CHECK(store.deliveries->Release("d1", {{claimed[4].id, 0, "released"}}) == 1);
  CHECK(store.session.TryBecomeLeader());
  CHECK(store.deliveries->ReadQueueMetrics().due == 1);
  CHECK(store.deliveries->ReadQueueMetrics().delivering == 1);
  CHECK(store.deliveries->ReadQueueMetrics().dead_lettered == 1);
  CHECK(store.deliveries->FindExpired(10).empty());
  CHECK(store.deliveries->WakeHeld() == 0);
  store.deliveries->PauseSubscription(sub, "test");
  store.deliveries->DisableSubscription(sub, "test");
  pgtest::Exec(admin, "UPDATE courier.deliveries SET created_at = now() - interval '3 hours', "
                      "completed_at = now() - interval '2 hours' WHERE id = $1", claimed[0].id);
  CHECK(store.deliveries->Prune(std::chrono::hours(1), std::chrono::hours(1), 100) == 1);
  // The run lane's reads and maintenance.
  CHECK(store.runs->Claim({{"d1", 10, std::chrono::seconds(30), {}}, {}}).empty());
  CHECK(store.runs->FindExpired(10).empty());
  CHECK(store.runs->ConnectionsToProbe().empty());
  CHECK(store.runs->PendingRotations().empty());
  CHECK(store.runs->ReadQueueMetrics(std::chrono::hours(1)).due == 0);
  CHECK(store.runs->Prune(std::chrono::hours(1), std::chrono::hours(1), 100) == 0);
}

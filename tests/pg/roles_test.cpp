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
  pgtest::DaemonSession store(daemon.url());
  CHECK(store.session.CheckSchema().missing.empty());
  store.session.Listen({"courier_deliveries", "courier_runs"});
  const auto claimed = store.Claim("d1", 10, std::chrono::seconds(30));
  REQUIRE(claimed.size() == 3);
  std::vector<pgcourier::model::DeliveryOutcome> outcomes;
  for (const auto& d : claimed) {
    pgcourier::model::DeliveryOutcome o;
    o.delivery_id = d.id;
    o.attempt = 1;
    o.next_status = pgcourier::model::DeliveryStatus::kDelivered;
    o.status_code = 200;
    o.outcome = "delivered";
    outcomes.push_back(o);
  }
  CHECK(store.deliveries->Record("d1", {outcomes[0], outcomes[1]}).applied.size() == 2);
  CHECK(store.deliveries->Release("d1", {{claimed[2].id, 0, "released"}}) == 1);
  CHECK(store.session.TryBecomeLeader());
  CHECK(store.deliveries->ReadQueueMetrics().due == 1);
  CHECK(store.deliveries->FindExpired(10).empty());
  CHECK(store.deliveries->WakeHeld() == 0);
  store.deliveries->PauseSubscription(sub, "test");
  store.deliveries->DisableSubscription(sub, "test");
  CHECK(store.deliveries->Prune(std::chrono::hours(1), std::chrono::hours(1), 100) == 0);
  // The run lane's reads and maintenance.
  CHECK(store.runs->Claim({{"d1", 10, std::chrono::seconds(30), {}}, {}}).empty());
  CHECK(store.runs->FindExpired(10).empty());
  CHECK(store.runs->ConnectionsToProbe().empty());
  CHECK(store.runs->PendingRotations().empty());
  CHECK(store.runs->ReadQueueMetrics(std::chrono::hours(1)).due == 0);
  CHECK(store.runs->Prune(std::chrono::hours(1), std::chrono::hours(1), 100) == 0);
}

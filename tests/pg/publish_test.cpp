// courier.publish() and the fan-out trigger on courier.events.
#include <doctest/doctest.h>

#include <set>
#include <utility>
#include <string>

#include "test_db.hpp"

namespace {

using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::Publish;
using pgtest::Scalar;
using pgtest::TestDb;

std::set<std::string> SubscriptionsDeliveredTo(pqxx::connection& conn, const std::string& event_id) {
  std::set<std::string> out;
  for (const auto& row : pgtest::Exec(conn, "SELECT subscription_id FROM courier.deliveries WHERE event_id = $1",
                                      event_id)) {
    out.insert(row[0].as<std::string>());
  }
  return out;
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("publish fans out one pending delivery per matching active subscription of the tenant") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto exact = AddSubscription(conn, "acme", {"order.created"});
  const auto prefix = AddSubscription(conn, "acme", {"order.*"});
  const auto star = AddSubscription(conn, "acme", {"*"});
  const auto other_type = AddSubscription(conn, "acme", {"invoice.paid", "orders.*"});
  const auto inactive = AddSubscription(conn, "acme", {"*"}, /*active=*/false);
  const auto other_tenant = AddSubscription(conn, "globex", {"*"});

  SUBCASE("exact name, prefix pattern and '*' match") {
    const auto event = Publish(conn, "acme", "order.created", R"({"id": 1})");
    CHECK(StartsWith(event, "evt_"));
    CHECK(SubscriptionsDeliveredTo(conn, event) == std::set<std::string>{exact, prefix, star});
    CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries WHERE event_id = $1", event) == 3);
    // Every delivery: dlv_ id, pending, no attempts, due now, no lease, same tenant.
    CHECK(Count(conn,
                "SELECT count(*) FROM courier.delivery_status v JOIN courier.deliveries d USING (id) WHERE v.event_id = $1 AND id LIKE 'dlv\\_%' "
                "AND v.status = 'pending' AND v.attempts = 0 AND lease_owner IS NULL AND lease_expires_at IS NULL AND payload_bytes > 0 "
                "AND v.next_attempt_at <= now() AND v.tenant_id = 'acme' AND v.completed_at IS NULL",
                event) == 3);
    CHECK(Scalar<std::string>(conn, "SELECT payload::text FROM courier.events WHERE id = $1", event) ==
          R"({"id": 1})");
  }
  SUBCASE("a prefix pattern matches deeper names") {
    const auto event = Publish(conn, "acme", "order.line.added");
    CHECK(SubscriptionsDeliveredTo(conn, event) == std::set<std::string>{prefix, star});
  }
  SUBCASE("'order.*' matches neither 'orders.x' nor 'order'") {
    const auto orders = Publish(conn, "acme", "orders.x");
    CHECK(SubscriptionsDeliveredTo(conn, orders) == std::set<std::string>{star, other_type});
    const auto bare = Publish(conn, "acme", "order");
    CHECK(SubscriptionsDeliveredTo(conn, bare) == std::set<std::string>{star});
  }
  SUBCASE("other tenants' events reach only their own subscriptions") {
    const auto event = Publish(conn, "globex", "order.created");
    CHECK(SubscriptionsDeliveredTo(conn, event) == std::set<std::string>{other_tenant});
    CHECK(Scalar<std::string>(conn, "SELECT tenant_id FROM courier.deliveries WHERE event_id = $1", event) ==
          "globex");
  }
  SUBCASE("an event nobody subscribes to creates no delivery") {
    const auto event = Publish(conn, "initech", "order.created");
    CHECK(StartsWith(event, "evt_"));
    CHECK(SubscriptionsDeliveredTo(conn, event).empty());
  }
  // The inactive subscription never got anything.
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries WHERE subscription_id = $1", inactive) == 0);
}

TEST_CASE("publish with the same tenant and idempotency key returns the first event and creates nothing") {
  TestDb db;
  pqxx::connection conn(db.url());
  AddSubscription(conn, "acme", {"*"});
  AddSubscription(conn, "globex", {"*"});

  const auto first = Publish(conn, "acme", "order.created", R"({"n": 1})", "key-1");
  const auto again = Publish(conn, "acme", "order.created", R"({"n": 2})", "key-1");
  CHECK(again == first);
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries") == 1);
  CHECK(Scalar<std::string>(conn, "SELECT payload::text FROM courier.events WHERE id = $1", first) == R"({"n": 1})");

  // Same key, another tenant: a new event with its own delivery.
  const auto other = Publish(conn, "globex", "order.created", R"({"n": 3})", "key-1");
  CHECK(other != first);
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries WHERE event_id = $1", other) == 1);

  // A different key in the same tenant is a new event too.
  const auto second = Publish(conn, "acme", "order.created", "{}", "key-2");
  CHECK(second != first);
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 3);
}

TEST_CASE("publish inside a rolled-back transaction publishes nothing") {
  TestDb db;
  pqxx::connection conn(db.url());
  AddSubscription(conn, "acme", {"*"});
  {
    pqxx::work txn(conn);
    const auto id = txn.exec1("SELECT courier.publish('acme', 'order.created', '{}'::jsonb)")[0].as<std::string>();
    // Visible inside the producer's transaction...
    CHECK(txn.exec_params1("SELECT count(*) FROM courier.deliveries WHERE event_id = $1", id)[0].as<int>() == 1);
    txn.abort();
  }
  // ...and gone with it.
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries") == 0);
}

TEST_CASE("a plain INSERT INTO courier.events fans out like publish") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"order.*"});
  AddSubscription(conn, "acme", {"invoice.*"});
  const auto event = Scalar<std::string>(
      conn, "INSERT INTO courier.events (tenant_id, event_type, payload) VALUES ('acme', 'order.created', '{}') "
            "RETURNING id");
  CHECK(StartsWith(event, "evt_"));
  CHECK(SubscriptionsDeliveredTo(conn, event) == std::set<std::string>{sub});
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.deliveries WHERE event_id = $1", event) == "pending");
}

TEST_CASE("publish refuses an empty tenant or event type") {
  TestDb db;
  pqxx::connection conn(db.url());
  AddSubscription(conn, "acme", {"*"});
  for (const auto& [tenant, type] : {std::pair<std::string, std::string>{"", "order.created"}, {"acme", ""}}) {
    CAPTURE(tenant);
    CAPTURE(type);
    std::string sqlstate;
    try {
      Publish(conn, tenant, type);
    } catch (const pqxx::sql_error& e) {
      sqlstate = e.sqlstate();
    }
    CHECK(sqlstate == "22023");  // invalid_parameter_value
  }
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 0);
}

TEST_CASE("a payload over courier.settings max_payload_bytes is refused, by publish and by a plain INSERT") {
  TestDb db;
  pqxx::connection conn(db.url());
  AddSubscription(conn, "acme", {"*"});
  const std::string big = "SELECT jsonb_build_object('pad', repeat('x', 1100000))";
  SUBCASE("publish") {
    const auto error = pgtest::ErrorOf(conn, "SELECT courier.publish('acme', 'order.created', (" + big + "))");
    CAPTURE(error);
    CHECK(error.find("courier.events.payload is 1100011 bytes, over the limit of 1048576 bytes") != std::string::npos);
    CHECK(error.find("max_payload_bytes") != std::string::npos);
  }
  SUBCASE("a plain INSERT") {
    CHECK_FALSE(pgtest::ErrorOf(conn, "INSERT INTO courier.events (tenant_id, event_type, payload) "
                                      "VALUES ('acme', 'order.created', (" + big + "))")
                    .empty());
  }
  SUBCASE("a value copied from another table, where PostgreSQL keeps it compressed") {
    // 5 MB of one repeated character compresses to about 60 kB: pg_column_size would let it through.
    pgtest::Exec(conn, "CREATE TABLE staging (p jsonb)");
    pgtest::Exec(conn, "INSERT INTO staging SELECT jsonb_build_object('pad', repeat('x', 5000000))");
    CHECK(Count(conn, "SELECT pg_column_size(p) FROM staging") < 1048576);
    const auto error = pgtest::ErrorOf(conn, "INSERT INTO courier.events (tenant_id, event_type, payload) "
                                             "SELECT 'acme', 'order.created', p FROM staging");
    CAPTURE(error);
    CHECK(error.find("courier.events.payload is 5000011 bytes") != std::string::npos);
  }
  // Nothing of a refused event is left.
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue") == 0);
}

TEST_CASE("a payload's size is measured at publish and travels with its deliveries into the queue") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto event = Publish(conn, "acme", "order.created", R"({"n": 1, "text": "héllo"})");
  const auto bytes = Count(conn, "SELECT octet_length(payload::text) FROM courier.events WHERE id = $1", event);
  CHECK(Count(conn, "SELECT payload_bytes FROM courier.events WHERE id = $1", event) == bytes);
  CHECK(Count(conn, "SELECT payload_bytes FROM courier.deliveries WHERE event_id = $1", event) == bytes);
  CHECK(Count(conn, "SELECT payload_bytes FROM courier.delivery_queue WHERE event_id = $1", event) == bytes);
  // The limit is the schema owner's to raise; then the large payload goes through.
  pgtest::Exec(conn, "UPDATE courier.settings SET value = 4194304 WHERE name = 'max_payload_bytes'");
  const auto large = Publish(conn, "acme", "order.created", R"({"pad": ")" + std::string(2000000, 'y') + R"("})");
  CHECK(Count(conn, "SELECT payload_bytes FROM courier.delivery_queue WHERE event_id = $1", large) > 2000000);
  (void)sub;
}

TEST_CASE("a producer cannot raise the payload limit") {
  TestDb db;
  pqxx::connection admin(db.url());
  pgtest::LoginRole producer(db, "courier_producer");
  pqxx::connection conn(producer.url());
  CHECK(pgtest::Refused(conn, "UPDATE courier.settings SET value = 1099511627776 WHERE name = 'max_payload_bytes'"));
  CHECK(pgtest::Refused(conn, "INSERT INTO courier.settings VALUES ('max_payload_bytes', 1)"));
  CHECK(Count(admin, "SELECT value FROM courier.settings WHERE name = 'max_payload_bytes'") == 1048576);
}

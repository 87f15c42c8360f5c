// Tenant isolation (issue 13): each attack a hostile producer or tenant tried,
// rerun against the schema. Every one must fail with a clear error, and
// nothing may be written or shown.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "test_db.hpp"

namespace {

using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::ErrorOf;
using pgtest::Exec;
using pgtest::LoginRole;
using pgtest::Refused;
using pgtest::Scalar;
using pgtest::TestDb;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string AddConnection(pqxx::connection& conn, const std::string& tenant,
                          const std::string& base_url = "https://api.example.test") {
  return Scalar<std::string>(conn,
                             "INSERT INTO courier.connections (tenant_id, provider, base_url) VALUES ($1, 'smsapi', $2) "
                             "RETURNING id",
                             tenant, base_url);
}

// The catalog relations the schema's functions name without a schema: a
// temporary view of the same name must never stand in for them.
const std::vector<std::string> kCatalogRelations = {"pg_roles", "pg_namespace", "pg_class", "pg_inherits",
                                                    "pg_authid", "pg_database"};

}  // namespace

TEST_CASE("every function of the courier schema pins its search_path, with pg_temp last") {
  TestDb db;
  pqxx::connection conn(db.url());
  // A function is safe from a caller's temporary objects when its body was
  // bound at creation (SQL-standard body) or its search_path is fixed with
  // pg_catalog first and pg_temp explicitly last (when pg_temp is not
  // listed, PostgreSQL searches it FIRST for relations).
  const pqxx::result unsafe = pgtest::Exec(conn, R"SQL(
    SELECT p.oid::regprocedure::text AS function, p.prosecdef, coalesce(array_to_string(p.proconfig, ' '), '') AS config
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'courier' AND p.prosqlbody IS NULL
      AND NOT coalesce((SELECT bool_or(c ~ '^search_path=pg_catalog, .*pg_temp$')
                        FROM unnest(p.proconfig) AS c), false)
    ORDER BY 1)SQL");
  for (const auto& row : unsafe) {
    FAIL_CHECK("function " << row["function"].as<std::string>()
                           << std::string(row["prosecdef"].as<bool>() ? " (SECURITY DEFINER)" : "")
                           << " has no safe search_path: '" << row["config"].as<std::string>() << "'");
  }
  CHECK(unsafe.empty());
  // And there are SECURITY DEFINER functions to audit at all (the query is not vacuous).
  CHECK(Count(conn, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = 'courier' AND p.prosecdef") > 10);
}

TEST_CASE("a producer cannot publish for another tenant by shadowing catalog views with temporary ones") {
  TestDb db;
  pqxx::connection admin(db.url());
  AddSubscription(admin, "globex", {"*"});
  const auto acme_conn = AddConnection(admin, "acme");
  const auto globex_conn = AddConnection(admin, "globex");
  LoginRole producer(db, "courier_producer");
  Exec(admin, "INSERT INTO courier.producer_tenants VALUES ($1, 'acme')", producer.name());
  pqxx::connection conn(producer.url());
  // The attack of the issue: a temporary pg_roles that says nobody is a producer.
  Exec(conn, "CREATE TEMP VIEW pg_roles AS SELECT 'nobody'::name AS rolname, 0::oid AS oid, false AS rolsuper");
  for (const auto& relation : kCatalogRelations) {
    if (relation == "pg_roles") continue;
    Exec(conn, "CREATE TEMP VIEW " + relation + " AS SELECT 0::oid AS oid WHERE false");
  }
  CHECK(Refused(conn, "SELECT courier.publish('globex', 'order.created', '{}')"));
  CHECK(Refused(conn, "INSERT INTO courier.events (tenant_id, event_type) VALUES ('globex', 'x')"));
  CHECK(Refused(conn, "SELECT courier.enqueue_run('globex', $1, 'sms.send')", globex_conn));
  CHECK(Refused(conn, "INSERT INTO courier.runs (tenant_id, connection_id, operation) VALUES ('globex', $1, 'x')",
                globex_conn));
  CHECK(Count(admin, "SELECT count(*) FROM courier.events WHERE tenant_id = 'globex'") == 0);
  CHECK(Count(admin, "SELECT count(*) FROM courier.deliveries") == 0);
  CHECK(Count(admin, "SELECT count(*) FROM courier.runs") == 0);
  // Its own tenant still works, with the temporary views in place.
  CHECK(Scalar<std::string>(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send')", acme_conn).rfind("run_", 0) == 0);
}

TEST_CASE("a producer-chosen event id must be a token: CR, LF, spaces and other characters are refused") {
  TestDb db;
  pqxx::connection conn(db.url());
  AddSubscription(conn, "acme", {"*"});
  for (const std::string& id : {std::string("evt_1\r\nX-Injected: yes"), std::string("evt 1"), std::string("evt_1\n"),
                               std::string(""), std::string(256, 'a'), std::string("évt"), std::string("-leading")}) {
    CAPTURE(id);
    const auto error = ErrorOf(conn, "INSERT INTO courier.events (id, tenant_id, event_type) VALUES ($1, 'acme', 'x')", id);
    CHECK(Contains(error, "courier.events.id must be"));
  }
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries") == 0);
  // Token ids (Standard Webhooks msg_ ids, UUIDs, dotted names) are fine.
  for (const std::string id : {"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                               "order-42.paid:v1", "_internal~1"}) {
    CAPTURE(id);
    CHECK(ErrorOf(conn, "INSERT INTO courier.events (id, tenant_id, event_type) VALUES ($1, 'acme', 'x')", id).empty());
  }
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries") == 4);
}

TEST_CASE("a run idempotency key with control characters is refused at insert, naming the column") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto error = ErrorOf(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send', idempotency_key => $2)", c,
                             std::string("order-42\r\nX-Injected: yes"));
  CHECK(Contains(error, "courier.runs.idempotency_key"));
  CHECK(Contains(ErrorOf(conn, "INSERT INTO courier.runs (tenant_id, connection_id, operation, idempotency_key) "
                               "VALUES ('acme', $1, 'x', $2)",
                         c, std::string("a\x01")),
                 "courier.runs.idempotency_key"));
  CHECK(Count(conn, "SELECT count(*) FROM courier.runs") == 0);
}

TEST_CASE("runs are enqueued only on a connection of their own tenant") {
  TestDb db;
  pqxx::connection admin(db.url());
  const auto acme = AddConnection(admin, "acme");
  const auto globex = AddConnection(admin, "globex");
  LoginRole producer(db, "courier_producer");
  Exec(admin, "INSERT INTO courier.producer_tenants VALUES ($1, 'acme')", producer.name());
  pqxx::connection conn(producer.url());
  // Another tenant's connection and one that does not exist get the same answer: nothing leaks which ids exist.
  const auto foreign = ErrorOf(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send')", globex);
  const auto unknown = ErrorOf(conn, "SELECT courier.enqueue_run('acme', 'conn_nope', 'sms.send')");
  CHECK(Contains(foreign, "is not a connection of tenant acme"));
  CHECK(Contains(unknown, "is not a connection of tenant acme"));
  CHECK(foreign.substr(foreign.find("is not")) == unknown.substr(unknown.find("is not")));
  CHECK(Contains(ErrorOf(conn, "INSERT INTO courier.runs (tenant_id, connection_id, operation) VALUES ('acme', $1, 'x')",
                         globex),
                 "is not a connection of tenant acme"));
  CHECK(Count(admin, "SELECT count(*) FROM courier.runs") == 0);
  CHECK(Scalar<std::string>(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send')", acme).rfind("run_", 0) == 0);
}

TEST_CASE("operator views never show URL query strings or run path tokens") {
  TestDb db;
  pqxx::connection admin(db.url());
  const auto sub = AddSubscription(admin, "acme", {"*"}, true, "default",
                                   "https://hooks.example.com/in?token=SECRET-SUB-TOKEN");
  pgtest::Publish(admin, "acme", "order.created");
  Exec(admin, "UPDATE courier.deliveries SET status = 'dead_lettered', completed_at = now()");
  const auto c = AddConnection(admin, "acme", "https://api.example.test/v1?api_key=SECRET-BASE-KEY");
  Exec(admin, "SELECT courier.enqueue_run('acme', $1, 'sms.send', path => '/send?token=SECRET-RUN-TOKEN')", c);
  LoginRole operator_role(db, "courier_operator");
  pqxx::connection conn(operator_role.url());
  for (const std::string& view : {"delivery_status", "dead_letters", "subscription_health", "connection_health",
                                 "run_status", "run_dead_letters", "delivery_timeline", "run_timeline", "queue_depth",
                                 "open_failures", "credential_expiry"}) {
    CAPTURE(view);
    const std::string text = Scalar<std::string>(
        conn, "SELECT coalesce(string_agg(to_jsonb(v)::text, ' '), '') FROM courier." + view + " v");
    CHECK_FALSE(Contains(text, "SECRET"));
  }
  CHECK(Scalar<std::string>(conn, "SELECT url FROM courier.subscription_health WHERE subscription_id = $1", sub) ==
        "https://hooks.example.com/in?***");
  CHECK(Scalar<std::string>(conn, "SELECT base_url FROM courier.connection_health") == "https://api.example.test/v1?***");
  CHECK(Scalar<std::string>(conn, "SELECT path FROM courier.run_status") == "/send?***");
}

TEST_CASE("the daemon role may write only the subscription columns it keeps, not its URL or tenant") {
  TestDb db;
  pqxx::connection admin(db.url());
  const auto sub = AddSubscription(admin, "acme", {"*"});
  pgtest::Publish(admin, "acme", "order.created");
  LoginRole daemon(db, "courier_daemon");
  pqxx::connection conn(daemon.url());
  CHECK(Refused(conn, "UPDATE courier.subscriptions SET url = 'https://evil.example/' WHERE id = $1", sub));
  CHECK(Refused(conn, "UPDATE courier.subscriptions SET tenant_id = 'globex' WHERE id = $1", sub));
  CHECK(Refused(conn, "UPDATE courier.subscriptions SET event_types = '{*}' WHERE id = $1", sub));
  CHECK(Refused(conn, "UPDATE courier.deliveries SET tenant_id = 'globex'"));
  CHECK(Refused(conn, "UPDATE courier.deliveries SET subscription_id = 'sub_other'"));
  // What record_outcomes keeps per subscription stays writable.
  Exec(conn, "UPDATE courier.subscriptions SET consecutive_failures = 1, last_error = 'x' WHERE id = $1", sub);
  CHECK(Scalar<std::string>(admin, "SELECT url FROM courier.subscriptions WHERE id = $1", sub) ==
        "https://hooks.example.test/in");
}

TEST_CASE("a producer may LISTEN to courier_outbox, but the notification carries nothing") {
  TestDb db;
  pqxx::connection admin(db.url());
  LoginRole producer(db, "courier_producer");
  pqxx::connection conn(producer.url());
  // PostgreSQL has no privilege for LISTEN: any role may listen on any channel.
  struct Receiver final : pqxx::notification_receiver {
    Receiver(pqxx::connection_base& c, std::vector<std::string>* payloads)
        : pqxx::notification_receiver(c, "courier_outbox"), payloads_(payloads) {}
    void operator()(const std::string& payload, int) override { payloads_->push_back(payload); }
    std::vector<std::string>* payloads_;
  };
  std::vector<std::string> payloads;
  Receiver receiver(conn, &payloads);
  Exec(admin, "SELECT courier.emit('IntegrationRunCompleted', 'globex', 'run_secret_1', NULL, '{\"x\": 1}')");
  for (int i = 0; i < 50 && payloads.empty(); ++i) conn.await_notification(0, 100000);
  REQUIRE(payloads.size() == 1);
  CHECK(payloads[0].empty());  // no tenant, id or count: only "look at the outbox"
  CHECK(Refused(conn, "SELECT * FROM courier.outbox"));  // and the rows are not for it to read
}

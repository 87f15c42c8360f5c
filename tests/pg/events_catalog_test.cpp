// The event side of issue 17 (sql/schema/60_catalog.sql): payload filters and
// scopes at fan-out, event labels, the event catalog and its JSON Schema
// subset, the change feed; each with the hostile input that would break it.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "test_db.hpp"

namespace {

using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::ErrorOf;
using pgtest::Exec;
using pgtest::Publish;
using pgtest::Scalar;
using pgtest::TestDb;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::set<std::string> DeliveredTo(pqxx::connection& conn, const std::string& event_id) {
  std::set<std::string> out;
  for (const auto& row : Exec(conn, "SELECT subscription_id FROM courier.deliveries WHERE event_id = $1", event_id)) {
    out.insert(row[0].as<std::string>());
  }
  return out;
}

std::string PublishLabelled(pqxx::connection& conn, const std::string& tenant, const std::string& type,
                            const std::string& payload, const std::string& labels) {
  return Scalar<std::string>(conn, "SELECT courier.publish($1, $2, $3::jsonb, labels => $4::jsonb)", tenant, type,
                             payload, labels);
}

void SetFilter(pqxx::connection& conn, const std::string& id, const std::string& filter) {
  Exec(conn, "SELECT courier.update_subscription($1, jsonb_build_object('filter', $2::text))", id, filter);
}

void SetScope(pqxx::connection& conn, const std::string& id, const std::string& scope) {
  Exec(conn, "SELECT courier.update_subscription($1, jsonb_build_object('scope', $2::jsonb))", id, scope);
}

}  // namespace

TEST_CASE("a filtered subscription gets a delivery only for the payloads its predicate matches") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto filtered = AddSubscription(conn, "acme", {"order.*"});
  const auto plain = AddSubscription(conn, "acme", {"order.*"});
  SetFilter(conn, filtered, "$.amount > 100");

  const auto big = Publish(conn, "acme", "order.created", R"({"amount": 150})");
  const auto small = Publish(conn, "acme", "order.created", R"({"amount": 50})");
  const auto missing = Publish(conn, "acme", "order.created", R"({"other": 1})");
  const auto wrong_type = Publish(conn, "acme", "order.created", R"({"amount": "lots"})");
  CHECK(DeliveredTo(conn, big) == std::set<std::string>{filtered, plain});
  CHECK(DeliveredTo(conn, small) == std::set<std::string>{plain});
  CHECK(DeliveredTo(conn, missing) == std::set<std::string>{plain});
  CHECK(DeliveredTo(conn, wrong_type) == std::set<std::string>{plain});

  SUBCASE("a plain INSERT fans out through the same filter") {
    const auto id = Scalar<std::string>(
        conn, "INSERT INTO courier.events (tenant_id, event_type, payload) VALUES ('acme', 'order.x', '{\"amount\": 101}') RETURNING id");
    CHECK(DeliveredTo(conn, id) == std::set<std::string>{filtered, plain});
  }
  SUBCASE("clearing the filter delivers everything again") {
    Exec(conn, "SELECT courier.update_subscription($1, '{\"filter\": null}')", filtered);
    CHECK(DeliveredTo(conn, Publish(conn, "acme", "order.created", R"({"amount": 1})")) ==
          std::set<std::string>{filtered, plain});
  }
}

TEST_CASE("a filter that is not a usable predicate is refused, by every writer, with PostgreSQL's message") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto patch = [&](const std::string& filter) {
    return ErrorOf(conn, "SELECT courier.update_subscription($1, jsonb_build_object('filter', $2::text))", sub, filter);
  };
  CHECK(Contains(patch("$.amount >"), "filter: syntax error at end of jsonpath input"));
  CHECK(Contains(patch("$.amount"), "is a path, not a predicate"));
  CHECK(Contains(patch("$.amount ? (@ > 100)"), "is a path, not a predicate"));
  CHECK(Contains(patch("$x > 1"), "could not find jsonpath variable"));
  CHECK(Contains(patch("$.a == \"" + std::string(2000, 'x') + "\""), "at most 1024"));
  // A plain INSERT or UPDATE meets the same check.
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.subscriptions SET filter = '$.a' WHERE id = $1", sub),
                 "not a predicate"));
  CHECK(Contains(ErrorOf(conn, "INSERT INTO courier.subscriptions (tenant_id, url, event_types, filter) VALUES "
                               "('acme', 'https://hooks.example.test/x', '{*}', '$.a +')"),
                 "syntax error"));
  // Nothing was written.
  CHECK(Count(conn, "SELECT count(*) FROM courier.subscriptions WHERE filter IS NOT NULL") == 0);
  // Predicates of every shape are kept.
  CHECK(patch("exists($.lines[*] ? (@.sku == \"A1\"))").empty());
  CHECK(patch("$.paid == true && $.currency == \"EUR\"").empty());
  CHECK(patch("strict $.a.b > 1").empty());
}

TEST_CASE("a scoped subscription gets only events whose labels contain every pair of its scope") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto web_f1 = AddSubscription(conn, "acme", {"*"});
  const auto web = AddSubscription(conn, "acme", {"*"});
  const auto all = AddSubscription(conn, "acme", {"*"});
  SetScope(conn, web_f1, R"({"channel": "web", "facility": "f1"})");
  SetScope(conn, web, R"({"channel": "web"})");

  CHECK(DeliveredTo(conn, PublishLabelled(conn, "acme", "t", "{}", R"({"channel": "web", "facility": "f1", "x": "y"})")) ==
        std::set<std::string>{web_f1, web, all});
  CHECK(DeliveredTo(conn, PublishLabelled(conn, "acme", "t", "{}", R"({"channel": "web", "facility": "f2"})")) ==
        std::set<std::string>{web, all});
  CHECK(DeliveredTo(conn, PublishLabelled(conn, "acme", "t", "{}", R"({"channel": "app"})")) ==
        std::set<std::string>{all});
  // No labels (the 5-argument publish of before) reaches only the unscoped.
  CHECK(DeliveredTo(conn, Publish(conn, "acme", "t")) == std::set<std::string>{all});
  CHECK(Scalar<std::string>(conn, "SELECT labels::text FROM courier.events ORDER BY created_at DESC, id LIMIT 1") ==
        "{}");
  // An empty scope is no scope.
  SetScope(conn, web, "{}");
  CHECK(Count(conn, "SELECT count(*) FROM courier.subscriptions WHERE id = $1 AND scope IS NULL", web) == 1);
}

TEST_CASE("labels and scopes that are not a small object of strings are refused, naming the field") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto publish = [&](const std::string& labels) {
    return ErrorOf(conn, "SELECT courier.publish('acme', 't', '{}', labels => $1::jsonb)", labels);
  };
  CHECK(Contains(publish(R"({"channel": 1})"), "courier.events.labels.channel: expected a string, got a JSON number"));
  CHECK(Contains(publish(R"({"channel": {"a": "b"}})"), "courier.events.labels.channel: expected a string"));
  CHECK(Contains(publish(R"(["web"])"), "courier.events.labels: expected a JSON object of strings"));
  CHECK(Contains(publish(R"("web")"), "courier.events.labels: expected a JSON object"));
  CHECK(Contains(publish(R"({"bad key\n": "x"})"), "is not a label name"));
  CHECK(Contains(publish(R"({"k": "line\nbreak"})"), "no control characters"));
  std::string many = "{";
  for (int i = 0; i < 33; ++i) many += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\": \"v\"";
  CHECK(Contains(publish(many + "}"), "at most 32"));
  CHECK(Contains(publish(R"({"k": ")" + std::string(5000, 'v') + "\"}"), "at most 4096"));
  // A plain INSERT too.
  CHECK(Contains(ErrorOf(conn, "INSERT INTO courier.events (tenant_id, event_type, labels) VALUES ('acme', 't', '[1]')"),
                 "courier.events.labels"));
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 0);

  const auto scope = [&](const std::string& value) {
    return ErrorOf(conn, "SELECT courier.update_subscription($1, jsonb_build_object('scope', $2::jsonb))", sub, value);
  };
  CHECK(Contains(scope(R"(["web"])"), "scope: expected a JSON object of strings"));
  CHECK(Contains(scope(R"({"channel": true})"), "scope.channel: expected a string, got a JSON boolean"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.subscriptions SET scope = '{\"a\": 1}' WHERE id = $1", sub),
                 "scope.a: expected a string"));
}

TEST_CASE("an event type's schema holds publish and a plain INSERT, naming the failing path") {
  TestDb db;
  pqxx::connection conn(db.url());
  Exec(conn, R"(SELECT courier.create_event_type('order.created', 'acme', 'an order was placed',
    '{"type": "object", "required": ["amount"], "additionalProperties": false,
      "properties": {"amount": {"type": "number", "minimum": 0},
                     "currency": {"enum": ["EUR", "USD"]},
                     "quantity": {"type": "integer", "maximum": 100},
                     "note": {"type": ["string", "null"], "minLength": 1, "maxLength": 5},
                     "lines": {"type": "array", "items": {"type": "object", "required": ["sku"],
                                                          "properties": {"sku": {"type": "string"}}}}}}',
    '{"amount": 10, "currency": "EUR"}'))");
  const auto error = [&](const std::string& payload) {
    return ErrorOf(conn, "SELECT courier.publish('acme', 'order.created', $1::jsonb)", payload);
  };
  CHECK(Contains(error(R"({"amount": "x"})"), "$.amount: expected number, got string"));
  CHECK(Contains(error(R"({})"), "$.amount: required"));
  CHECK(Contains(error(R"([])"), "$: expected object, got array"));
  CHECK(Contains(error(R"({"amount": -1})"), "$.amount: expected at least 0"));
  CHECK(Contains(error(R"({"amount": 1, "currency": "GBP"})"), "$.currency: expected one of"));
  CHECK(Contains(error(R"({"amount": 1, "quantity": 1.5})"), "$.quantity: expected integer"));
  CHECK(Contains(error(R"({"amount": 1, "quantity": 101})"), "$.quantity: expected at most 100"));
  CHECK(Contains(error(R"({"amount": 1, "note": ""})"), "$.note: expected at least 1 characters"));
  CHECK(Contains(error(R"({"amount": 1, "note": "toolong"})"), "$.note: expected at most 5 characters"));
  CHECK(Contains(error(R"({"amount": 1, "lines": [{"sku": "a"}, {}]})"), "$.lines[1].sku: required"));
  CHECK(Contains(error(R"({"amount": 1, "extra": true})"), "$.extra: not allowed"));
  CHECK(Contains(error(R"({"amount": 1, "we ird": true})"), "$.\"we ird\": not allowed"));
  CHECK(Contains(ErrorOf(conn, "INSERT INTO courier.events (tenant_id, event_type, payload) VALUES ('acme', "
                               "'order.created', '{\"amount\": true}')"),
                 "$.amount: expected number, got boolean"));
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 0);
  CHECK(error(R"({"amount": 1, "currency": "USD", "quantity": 3, "note": null, "lines": [{"sku": "a"}]})").empty());
  // Another tenant's event of the same name is not held to acme's schema.
  CHECK(ErrorOf(conn, "SELECT courier.publish('globex', 'order.created', '[]')").empty());

  SUBCASE("a tenant's own type wins over the global one") {
    Exec(conn, "SELECT courier.create_event_type('user.created', NULL, NULL, '{\"required\": [\"id\"]}')");
    CHECK(Contains(ErrorOf(conn, "SELECT courier.publish('globex', 'user.created', '{}')"), "$.id: required"));
    Exec(conn, "SELECT courier.create_event_type('user.created', 'globex', NULL, '{\"type\": \"object\"}')");
    CHECK(ErrorOf(conn, "SELECT courier.publish('globex', 'user.created', '{}')").empty());
  }
}

TEST_CASE("schemas outside the documented subset, and specimens they refuse, are not stored") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto create = [&](const std::string& name, const std::string& schema, const std::string& specimen = "") {
    return ErrorOf(conn, "SELECT courier.create_event_type($1, 'acme', NULL, $2::jsonb, nullif($3, '')::jsonb)", name,
                   schema, specimen);
  };
  CHECK(Contains(create("a", R"({"type": "object", "pattern": "x"})"), "unsupported keyword"));
  CHECK(Contains(create("a", R"({"type": "objet"})"), "\"objet\" is not one of"));
  CHECK(Contains(create("a", R"({"properties": {"x": {"minLength": -1}}})"), "#/properties/x/minLength"));
  CHECK(Contains(create("a", R"({"additionalProperties": {"type": "string"}})"), "only true or false"));
  CHECK(Contains(create("a", R"([])"), "expected a JSON object (a schema)"));
  CHECK(Contains(create("a", R"({"type": "object"})", "[1]"), "specimen: does not match the schema: $: expected object"));
  CHECK(Contains(create("a.*", R"({})"), "is a pattern"));
  std::string deep = "{}";
  for (int i = 0; i < 40; ++i) deep = R"({"items": )" + deep + "}";
  CHECK(Contains(create("a", deep), "nested more than 32"));
  CHECK(Contains(create("a", R"({"description": ")" + std::string(70000, 'x') + "\"}"), "at most 65536"));
  CHECK(Count(conn, "SELECT count(*) FROM courier.event_types") == 0);
  CHECK(create("a", R"({"type": "object"})", "{}").empty());
  CHECK(Contains(create("a", R"({})"), "already registered for tenant acme"));
}

TEST_CASE("where a tenant uses the catalog, subscriptions to unknown event types are refused") {
  TestDb db;
  pqxx::connection conn(db.url());
  // Global types alone do not turn the rule on.
  Exec(conn, "SELECT courier.create_event_type('user.created')");
  CHECK(!AddSubscription(conn, "acme", {"anything.at.all"}).empty());
  Exec(conn, "SELECT courier.create_event_type('order.created', 'acme')");
  const auto insert = [&](const std::string& types) {
    return ErrorOf(conn, "INSERT INTO courier.subscriptions (tenant_id, url, event_types) VALUES ('acme', "
                         "'https://hooks.example.test/in', $1::text[])",
                   types);
  };
  CHECK(Contains(insert("{invoice.paid}"), "\"invoice.paid\" is not an event type of tenant acme"));
  CHECK(Contains(insert("{order.created,nope}"), "\"nope\" is not an event type"));
  CHECK(insert("{order.created}").empty());
  CHECK(insert("{order.*}").empty());
  CHECK(insert("{user.created}").empty());  // a global type is known
  CHECK(insert("{*}").empty());
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_subscription('acme', 'https://hooks.example.test/in', '{x.y}')"),
                 "is not an event type"));
  // Another tenant is not affected by acme's catalog.
  CHECK(!AddSubscription(conn, "globex", {"invoice.paid"}).empty());
}

TEST_CASE("the change feed pages a tenant's events in a stable order, filtered, with a cursor") {
  TestDb db;
  pqxx::connection conn(db.url());
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(PublishLabelled(conn, "acme", i % 2 ? "order.paid" : "invoice.sent", "{\"i\": " + std::to_string(i) + "}",
                                  i % 2 ? R"({"channel": "web"})" : R"({"channel": "app"})"));
  }
  Publish(conn, "globex", "order.paid");
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    const auto rows = Exec(conn, "SELECT cursor, id FROM courier.event_feed('acme', nullif($1, ''), 2)", cursor);
    if (rows.empty()) break;
    CHECK(rows.size() <= 2);
    for (const auto& r : rows) seen.push_back(r["id"].as<std::string>());
    cursor = rows[rows.size() - 1]["cursor"].as<std::string>();
  }
  CHECK(seen == ids);
  CHECK(Count(conn, "SELECT count(*) FROM courier.event_feed('acme', event_type_prefix => 'order.')") == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.event_feed('acme', labels => '{\"channel\": \"app\"}')") == 3);
  CHECK(Count(conn, "SELECT count(*) FROM courier.event_feed('acme', since => now() + interval '1 hour')") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.event_feed('acme', until => now() + interval '1 hour')") == 5);
  CHECK(Contains(ErrorOf(conn, "SELECT * FROM courier.event_feed('acme', 'x''; DROP TABLE y')"),
                 "is not a cursor of event_feed"));
  CHECK(Contains(ErrorOf(conn, "SELECT * FROM courier.event_feed('acme', max_rows => 0)"), "max_rows"));
  CHECK(Contains(ErrorOf(conn, "SELECT * FROM courier.event_feed('acme', labels => '[1]')"), "labels: expected"));

  SUBCASE("an event of a transaction still open appears only after it commits, never behind a cursor") {
    pqxx::connection other(db.url());
    pqxx::work open(other);
    open.exec("SELECT courier.publish('acme', 'late', '{}')");
    Publish(conn, "acme", "after");  // committed, but younger than the open transaction
    const auto tail = Exec(conn, "SELECT cursor, event_type FROM courier.event_feed('acme', $1)", cursor);
    CHECK(tail.empty());  // neither: the feed waits for the open transaction
    open.commit();
    const auto rows = Exec(conn, "SELECT cursor, event_type FROM courier.event_feed('acme', $1)", cursor);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["event_type"].as<std::string>() == "late");
    CHECK(rows[1]["event_type"].as<std::string>() == "after");
  }
}

TEST_CASE("import_event is idempotent by event id and idempotency key and names what is wrong with a line") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto import = [&](const std::string& line) {
    return Scalar<std::string>(conn, "SELECT courier.import_event('acme', $1)", line);
  };
  CHECK(import(R"({"id": "evt_a", "type": "t", "payload": {"n": 1}, "labels": {"c": "w"}, "created_at": "2020-01-01T00:00:00Z"})") ==
        "imported");
  CHECK(import(R"({"id": "evt_a", "type": "t", "payload": {"n": 2}})") == "duplicate");
  CHECK(import(R"({"type": "t", "idempotency_key": "k1"})") == "imported");
  CHECK(import(R"({"type": "t", "idempotency_key": "k1"})") == "duplicate");
  CHECK(import(R"({"cursor": "1:evt_a"})") == "cursor");
  CHECK(Scalar<std::string>(conn, "SELECT created_at::text || labels::text FROM courier.events WHERE id = 'evt_a'") ==
        "2020-01-01 00:00:00+00{\"c\": \"w\"}");
  const auto error = [&](const std::string& line) {
    return ErrorOf(conn, "SELECT courier.import_event('acme', $1)", line);
  };
  CHECK(Contains(error("{\"type\": "), "not JSON"));
  CHECK(Contains(error("[1]"), "expected a JSON object (an event)"));
  CHECK(Contains(error(R"({"payload": {}})"), "type: expected the event type"));
  CHECK(Contains(error(R"({"type": "t", "tenant_id": "globex"})"), "the event is of tenant \"globex\", not acme"));
  CHECK(Contains(error(R"({"type": "t", "id": 5})"), "id: expected a string"));
  CHECK(Contains(error(R"({"type": "t", "id": "bad id"})"), "courier.events.id must be"));
  CHECK(Contains(error(R"({"type": "t", "labels": []})"), "courier.events.labels"));
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 2);
}

TEST_CASE("deliveries and dead letters page in a stable order with cursors") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  for (int i = 0; i < 5; ++i) Publish(conn, "acme", "t");
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    const auto rows = Exec(conn, "SELECT cursor, line ->> 'id' AS id FROM courier.export_deliveries('acme', nullif($1, ''), 2)",
                           cursor);
    if (rows.empty()) break;
    for (const auto& r : rows) seen.push_back(r["id"].as<std::string>());
    cursor = rows[rows.size() - 1]["cursor"].as<std::string>();
  }
  CHECK(seen.size() == 5);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 5);
  Exec(conn, "UPDATE courier.deliveries SET status = 'dead_lettered', completed_at = now() - (random() * interval '1 hour')");
  std::vector<std::string> dead;
  cursor.clear();
  for (int page = 0; page < 10; ++page) {
    const auto rows = Exec(conn,
                           "SELECT cursor, line ->> 'delivery_id' AS id FROM courier.dead_letter_page(subscription_id => $1, "
                           "after_cursor => nullif($2, ''), max_rows => 2)",
                           sub, cursor);
    if (rows.empty()) break;
    for (const auto& r : rows) dead.push_back(r["id"].as<std::string>());
    cursor = rows[rows.size() - 1]["cursor"].as<std::string>();
  }
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_dead_letters") == 5);
  CHECK(dead.size() == 5);
  CHECK(std::set<std::string>(dead.begin(), dead.end()).size() == 5);
  CHECK(Contains(ErrorOf(conn, "SELECT * FROM courier.dead_letter_page(after_cursor => 'nope')"), "is not a cursor"));
  const auto shown = Scalar<std::string>(conn, "SELECT courier.show_dead_letter($1)::text", dead[0]);
  CHECK(Contains(shown, "\"timeline\": []"));
  CHECK(Count(conn, "SELECT count(*) FROM (SELECT courier.show_dead_letter('dlv_none') j) x WHERE j IS NULL") == 1);
}

TEST_CASE("a v1a key keeps its public key beside the sealed private key, and a bad public key is refused") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const std::string pk = "whpk_" + std::string(43, 'A') + "=";
  Exec(conn, "SELECT * FROM courier.rotate_subscription_key($1, 'v1:AAAA', $2, interval '0')", sub, pk);
  CHECK(Scalar<std::string>(conn, "SELECT public_key || ' ' || last4 FROM courier.subscription_secrets WHERE subscription_id = $1",
                            sub) == pk + " AAA=");
  CHECK(Contains(ErrorOf(conn, "SELECT * FROM courier.rotate_subscription_key($1, 'v1:AAAA', 'whpk_short')", sub),
                 "public_key: expected whpk_"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.subscription_secrets SET public_key = 'x'"), "check constraint"));
}

TEST_CASE("a plain INSERT cannot choose its place in the feed, and an old subscription keeps working once its tenant uses the catalog") {
  TestDb db;
  pqxx::connection conn(db.url());
  Exec(conn, "INSERT INTO courier.events (id, tenant_id, event_type, feed_xid) VALUES ('evt_early', 'acme', 't', '1')");
  CHECK(Count(conn, "SELECT count(*) FROM courier.events WHERE id = 'evt_early' AND feed_xid::text::bigint > 1") == 1);
  const auto old = AddSubscription(conn, "acme", {"legacy.type"});
  Exec(conn, "SELECT courier.create_event_type('order.created', 'acme')");
  CHECK(ErrorOf(conn, "SELECT courier.update_subscription($1, '{\"url\": \"https://hooks.example.test/v2\"}')", old).empty());
  CHECK(Contains(ErrorOf(conn, "SELECT courier.update_subscription($1, '{\"event_types\": [\"other\"]}')", old),
                 "is not an event type"));
}

TEST_CASE("import_events takes a batch: each line's fate in order, a rejected one rolled back alone") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto rows = Exec(conn,
                         "SELECT line_index, status, coalesce(reason, '') AS reason FROM courier.import_events('acme', "
                         "ARRAY['{\"id\": \"evt_1\", \"type\": \"t\"}', '{bad', '{\"id\": \"evt_1\", \"type\": \"t\"}', "
                         "'{\"type\": \"t\", \"labels\": {\"a\": 1}}', '{\"cursor\": \"1:evt_1\"}']) ORDER BY line_index");
  REQUIRE(rows.size() == 5);
  CHECK(rows[0]["status"].as<std::string>() == "imported");
  CHECK(rows[1]["status"].as<std::string>() == "rejected");
  CHECK(Contains(rows[1]["reason"].as<std::string>(), "not JSON"));
  CHECK(rows[2]["status"].as<std::string>() == "duplicate");
  CHECK(rows[3]["status"].as<std::string>() == "rejected");
  CHECK(Contains(rows[3]["reason"].as<std::string>(), "courier.events.labels.a"));
  CHECK(rows[4]["status"].as<std::string>() == "cursor");
  CHECK(Count(conn, "SELECT count(*) FROM courier.events") == 1);
}

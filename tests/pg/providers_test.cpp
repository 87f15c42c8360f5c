// The provider registry (sql/schema/70_providers.sql) as a contract the
// database keeps for every writer: keys unique per scope, activation only
// with an active API client, capabilities a subset, the last client's
// deprecation deprecating the provider, connections needing an active
// provider, runs naming only declared capabilities, one rate budget shared
// by every daemon, and no tenant reaching another's providers.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgtest::Count;
using pgtest::ErrorOf;
using pgtest::Exec;
using pgtest::Scalar;
using pgtest::TestDb;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A provider of `tenant` ("" global) with capabilities sms.send and sms.status.
std::string AddProvider(pqxx::connection& conn, const std::string& tenant, const std::string& key = "twilio",
                        const std::string& rate = "") {
  return Scalar<std::string>(
      conn,
      "SELECT courier.create_provider(key => $1, tenant_id => nullif($2, ''), category => 'sms', "
      "  capabilities => '{sms.send,sms.status}', rate_limit_per_second => nullif($3, '')::float8)",
      key, tenant, rate);
}

std::string AddClient(pqxx::connection& conn, const std::string& provider, const std::string& status = "active",
                      const std::string& version = "1.0.0") {
  return Scalar<std::string>(conn, "SELECT courier.create_api_client($1, 'sdk', $2, status => $3)", provider, version,
                             status);
}

// A registered provider made active with one active client; returns the provider id.
std::string ActiveProvider(pqxx::connection& conn, const std::string& tenant, const std::string& key = "twilio",
                           const std::string& rate = "") {
  const std::string p = AddProvider(conn, tenant, key, rate);
  AddClient(conn, p);
  Exec(conn, "SELECT courier.set_provider_status($1, 'active')", p);
  return p;
}

std::string ProviderStatus(pqxx::connection& conn, const std::string& p) {
  return Scalar<std::string>(conn, "SELECT status FROM courier.providers WHERE id = $1", p);
}

std::string AddConnection(pqxx::connection& conn, const std::string& tenant, const std::string& provider_key,
                          const std::string& provider_id = "") {
  return Scalar<std::string>(conn,
                             "INSERT INTO courier.connections (tenant_id, provider, provider_id, base_url) "
                             "VALUES ($1, $2, nullif($3, ''), 'https://api.example.test') RETURNING id",
                             tenant, provider_key, provider_id);
}

std::string ConnectionError(pqxx::connection& conn, const std::string& tenant, const std::string& provider_key,
                            const std::string& provider_id = "") {
  return ErrorOf(conn,
                 "INSERT INTO courier.connections (tenant_id, provider, provider_id, base_url) "
                 "VALUES ($1, $2, nullif($3, ''), 'https://api.example.test')",
                 tenant, provider_key, provider_id);
}

}  // namespace

TEST_CASE("a provider key is unique in its scope; a tenant's own and a global provider may share it") {
  TestDb db;
  pqxx::connection conn(db.url());
  AddProvider(conn, "acme");
  const auto clash = ErrorOf(conn, "SELECT courier.create_provider(key => 'twilio', tenant_id => 'acme')");
  CHECK(Contains(clash, "provider key \"twilio\" is already registered for tenant acme"));
  // a plain INSERT is held to the same rule by the unique constraint
  CHECK(Contains(ErrorOf(conn, "INSERT INTO courier.providers (tenant_id, key) VALUES ('acme', 'twilio')"),
                 "providers_tenant_id_key_key"));
  AddProvider(conn, "");        // global
  AddProvider(conn, "globex");  // another tenant's scope
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_provider(key => 'twilio')"), "already registered globally"));
  CHECK(
      Contains(ErrorOf(conn, "INSERT INTO courier.providers (key) VALUES ('twilio')"), "providers_tenant_id_key_key"));
  CHECK(Count(conn, "SELECT count(*) FROM courier.providers WHERE key = 'twilio'") == 3);
  // bad input names the field
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_provider(key => 'x', capabilities => '{SMS send}')"),
                 "courier.providers.capabilities: \"SMS send\" is not a capability"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_provider(key => 'y', tenant_id => 'bad tenant')"),
                 "courier.providers.tenant_id"));
}

TEST_CASE("a provider becomes active only with an active API client") {
  TestDb db;
  pqxx::connection conn(db.url());
  const std::string p = AddProvider(conn, "acme");
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_provider_status($1, 'active')", p), "has no active API client"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.providers SET status = 'active' WHERE id = $1", p),
                 "has no active API client"));
  CHECK(Contains(ErrorOf(conn, "INSERT INTO courier.providers (key, status) VALUES ('new', 'active')"),
                 "a new provider starts registered"));
  const std::string client = AddClient(conn, p, "registered");
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_provider_status($1, 'active')", p), "has no active API client"));
  Exec(conn, "SELECT courier.set_api_client_status($1, 'active')", client);
  CHECK(Scalar<std::string>(conn, "SELECT courier.set_provider_status($1, 'active')", p) == "registered");
  CHECK(ProviderStatus(conn, p) == "active");
}

TEST_CASE("an API client's capabilities are a subset of its provider's, and the provider cannot drop them") {
  TestDb db;
  pqxx::connection conn(db.url());
  const std::string p = AddProvider(conn, "acme");
  const auto extra = ErrorOf(conn, "SELECT courier.create_api_client($1, 'sdk', '1.0.0', '{sms.send,voice.call}')", p);
  CHECK(Contains(
      extra, "capabilities voice.call are not capabilities of provider twilio (it declares: sms.send, sms.status)"));
  CHECK(Contains(ErrorOf(conn,
                         "INSERT INTO courier.api_clients (provider_id, name, version, capabilities) "
                         "VALUES ($1, 'sdk', '1.0.0', '{voice.call}')",
                         p),
                 "are not capabilities of provider twilio"));
  const std::string client =
      Scalar<std::string>(conn, "SELECT courier.create_api_client($1, 'sdk', '1.0.0', '{sms.send}')", p);
  // default capabilities: the provider's
  const std::string defaulted = Scalar<std::string>(conn, "SELECT courier.create_api_client($1, 'sdk', '1.1.0')", p);
  CHECK(Scalar<std::string>(conn, "SELECT capabilities::text FROM courier.api_clients WHERE id = $1", defaulted) ==
        "{sms.send,sms.status}");
  CHECK(Contains(
      ErrorOf(conn, "UPDATE courier.api_clients SET capabilities = '{sms.send,fax.send}' WHERE id = $1", client),
      "fax.send are not capabilities"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.providers SET capabilities = '{sms.status}' WHERE id = $1", p),
                 "capabilities sms.send are declared by its API clients and cannot be dropped"));
  Exec(conn, "UPDATE courier.providers SET capabilities = '{sms.send,sms.status,voice.call}' WHERE id = $1", p);
  // name + semantic version: unique per provider, and a version is semantic
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_api_client($1, 'sdk', '1.0.0')", p),
                 "API client sdk@1.0.0 of provider twilio already exists"));
  CHECK(Contains(
      ErrorOf(conn, "INSERT INTO courier.api_clients (provider_id, name, version) VALUES ($1, 'sdk', '1.0.0')", p),
      "api_clients_provider_id_name_version_key"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_api_client($1, 'sdk', '1.0')", p),
                 "courier.api_clients.version: \"1.0\" is not a semantic version"));
  CHECK(ErrorOf(conn, "SELECT courier.create_api_client($1, 'sdk', '2.0.0-beta.1+build.5')", p).empty());
}

TEST_CASE("deprecating a provider's last active API client deprecates the provider; deprecated is final") {
  TestDb db;
  pqxx::connection conn(db.url());
  const std::string p = AddProvider(conn, "acme");
  const std::string a = AddClient(conn, p, "active", "1.0.0");
  const std::string b = AddClient(conn, p, "active", "2.0.0");
  Exec(conn, "SELECT courier.set_provider_status($1, 'active')", p);
  Exec(conn, "SELECT courier.set_api_client_status($1, 'deprecated')", a);
  CHECK(ProviderStatus(conn, p) == "active");                                           // b is still active
  Exec(conn, "UPDATE courier.api_clients SET status = 'deprecated' WHERE id = $1", b);  // a plain UPDATE too
  CHECK(ProviderStatus(conn, p) == "deprecated");
  CHECK(Contains(Scalar<std::string>(conn, "SELECT status_reason FROM courier.providers WHERE id = $1", p),
                 "its last active API client sdk@2.0.0"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_provider_status($1, 'active')", p),
                 "status cannot go from deprecated to active"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.api_clients SET status = 'active' WHERE id = $1", b),
                 "status cannot go from deprecated to active"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_api_client($1, 'sdk', '3.0.0', status => 'active')", p),
                 "is deprecated; it takes no new API clients"));

  // deleting the last active client does the same
  const std::string q = ActiveProvider(conn, "acme", "vonage");
  Exec(conn, "DELETE FROM courier.api_clients WHERE provider_id = $1", q);
  CHECK(ProviderStatus(conn, q) == "deprecated");
}

TEST_CASE("a connection needs an active provider; a deprecated provider accepts no new connections") {
  TestDb db;
  pqxx::connection conn(db.url());
  // No registered provider of that key: an unlinked connection, as before the registry.
  const std::string legacy = AddConnection(conn, "acme", "smsapi");
  CHECK(Scalar<bool>(conn, "SELECT provider_id IS NULL FROM courier.connections WHERE id = $1", legacy));

  const std::string p = AddProvider(conn, "acme");
  CHECK(Contains(ConnectionError(conn, "acme", "twilio"),
                 "provider twilio (" + p + ") is registered: a connection needs an active provider"));
  CHECK(Contains(ConnectionError(conn, "acme", "x", p), "is registered: a connection needs an active provider"));
  AddClient(conn, p);
  Exec(conn, "SELECT courier.set_provider_status($1, 'active')", p);
  // linked by key (the tenant's own first) or by id; provider becomes the key
  const std::string by_key = AddConnection(conn, "acme", "twilio");
  const std::string by_id = AddConnection(conn, "acme", "whatever", p);
  CHECK(Count(conn, "SELECT count(*) FROM courier.connections WHERE provider_id = $1 AND provider = 'twilio'", p) == 2);
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.connections SET provider = 'other' WHERE id = $1", by_key),
                 "provider is its registered provider's key"));
  // auth model must match the provider's
  CHECK(Contains(ErrorOf(conn,
                         "INSERT INTO courier.connections (tenant_id, provider, base_url, auth_mode, credential_id) "
                         "VALUES ('acme', 'twilio', 'https://x.test', 'bearer', NULL)"),
                 "connection auth_mode bearer does not match provider twilio"));

  Exec(conn, "SELECT courier.set_provider_status($1, 'deprecated')", p);
  CHECK(Contains(ConnectionError(conn, "acme", "twilio"),
                 "is deprecated: a deprecated provider accepts no new connections"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.connections SET provider_id = $1 WHERE id = $2", p, legacy),
                 "a deprecated provider accepts no new connections"));
  // the existing ones keep working: still linked, still active, still updatable
  Exec(conn, "UPDATE courier.connections SET status = 'degraded' WHERE id = $1", by_id);
  CHECK(Count(conn, "SELECT count(*) FROM courier.connections WHERE provider_id = $1", p) == 2);

  // a global provider serves every tenant; a tenant's own wins over it
  const std::string global = ActiveProvider(conn, "", "sendgrid");
  const std::string c = AddConnection(conn, "globex", "sendgrid");
  CHECK(Scalar<std::string>(conn, "SELECT provider_id FROM courier.connections WHERE id = $1", c) == global);
  const std::string own = ActiveProvider(conn, "globex", "sendgrid");
  const std::string c2 = AddConnection(conn, "globex", "sendgrid");
  CHECK(Scalar<std::string>(conn, "SELECT provider_id FROM courier.connections WHERE id = $1", c2) == own);
}

TEST_CASE("a run's operation must be a capability of its connection's provider, at enqueue_run and at INSERT") {
  TestDb db;
  pqxx::connection conn(db.url());
  ActiveProvider(conn, "acme");
  const std::string c = AddConnection(conn, "acme", "twilio");
  const std::string legacy = AddConnection(conn, "acme", "smsapi");
  CHECK(Scalar<std::string>(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send')", c).rfind("run_", 0) == 0);
  const auto refused = ErrorOf(conn, "SELECT courier.enqueue_run('acme', $1, 'voice.call')", c);
  CHECK(Contains(refused, "courier.runs.operation: \"voice.call\" is not a capability of provider twilio (connection " +
                              c + "); it declares: sms.send, sms.status"));
  CHECK(Contains(
      ErrorOf(conn, "INSERT INTO courier.runs (tenant_id, connection_id, operation) VALUES ('acme', $1, 'x.y')", c),
      "is not a capability of provider twilio"));
  CHECK(Count(conn, "SELECT count(*) FROM courier.runs") == 1);
  // an unlinked connection takes any operation, as before
  CHECK(ErrorOf(conn, "SELECT courier.enqueue_run('acme', $1, 'anything')", legacy).empty());
}

TEST_CASE("a provider's rate budget is one bucket shared by all its connections and every daemon's claims") {
  TestDb db;
  pqxx::connection conn(db.url());
  const std::string p = AddProvider(conn, "acme", "twilio", "0.01");  // one token per 100 s
  Exec(conn, "UPDATE courier.providers SET rate_limit_burst = 2 WHERE id = $1", p);
  AddClient(conn, p);
  Exec(conn, "SELECT courier.set_provider_status($1, 'active')", p);
  const std::string c1 = AddConnection(conn, "acme", "twilio");
  const std::string c2 = AddConnection(conn, "acme", "twilio");
  Exec(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send'), courier.enqueue_run('acme', $2, 'sms.send')", c1, c2);
  pgtest::DaemonSession d1(db.url());
  pgtest::DaemonSession d2(db.url());
  const auto first = d1.runs->Claim({{"d1", 10, 30s, {}}, {}});
  REQUIRE(first.size() == 2);
  CHECK(first[0].provider_wait_ms == 0);
  CHECK(first[1].provider_wait_ms == 0);
  CHECK(first[0].provider_key == "twilio");
  // the bucket (burst 2) is empty now, for the other daemon and the other connection too
  Exec(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send')", c2);
  const auto second = d2.runs->Claim({{"d2", 10, 30s, {}}, {}});
  REQUIRE(second.size() == 1);
  CHECK(second[0].provider_wait_ms > 90'000);
  CHECK(second[0].provider_wait_ms <= 100'000);
  // a provider without a profile never waits, and neither does an unlinked connection
  const std::string legacy = AddConnection(conn, "acme", "smsapi");
  Exec(conn, "SELECT courier.enqueue_run('acme', $1, 'sms.send')", legacy);
  const auto third = d2.runs->Claim({{"d2", 10, 30s, {}}, {}});
  REQUIRE(third.size() == 1);
  CHECK(third[0].provider_wait_ms == 0);
  CHECK(third[0].provider_key.empty());
}

TEST_CASE("no tenant reaches another tenant's providers: unknown and foreign look the same") {
  TestDb db;
  pqxx::connection conn(db.url());
  const std::string p = ActiveProvider(conn, "acme");
  // a connection of globex cannot use acme's provider, by id or by key
  const auto foreign = ConnectionError(conn, "globex", "x", p);
  const auto unknown = ConnectionError(conn, "globex", "x", "prv_nope");
  CHECK(Contains(foreign, "is not a provider of tenant globex (nor a global one)"));
  CHECK(Contains(unknown, "is not a provider of tenant globex (nor a global one)"));
  // nor move a linked connection to another tenant
  const std::string linked = AddConnection(conn, "acme", "twilio");
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.connections SET tenant_id = 'globex' WHERE id = $1", linked),
                 "is not a provider of tenant globex"));
  const std::string c = AddConnection(conn, "globex", "twilio");  // acme's key means nothing to globex
  CHECK(Scalar<bool>(conn, "SELECT provider_id IS NULL FROM courier.connections WHERE id = $1", c));
  // acting as globex: acme's provider does not exist
  CHECK(Contains(ErrorOf(conn, "SELECT courier.find_provider($1, 'globex')", p), "no provider \"" + p + "\""));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_provider_status($1, 'deprecated', acting_tenant => 'globex')", p),
                 "no provider"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_api_client($1, 'evil', '1.0.0', acting_tenant => 'globex')", p),
                 "no provider"));
  const std::string client = Scalar<std::string>(conn, "SELECT id FROM courier.api_clients WHERE provider_id = $1", p);
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_api_client_status($1, 'deprecated', 'globex')", client),
                 "no API client"));
  CHECK(ProviderStatus(conn, p) == "active");
  // and a tenant changes no global provider
  const std::string global = AddProvider(conn, "", "sendgrid");
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_provider_status($1, 'deprecated', acting_tenant => 'acme')", global),
                 "is global; only an administrator"));
}

TEST_CASE("operators manage providers through the functions; producers cannot touch the registry") {
  TestDb db;
  pgtest::LoginRole op(db, "courier_operator");
  pgtest::LoginRole producer(db, "courier_producer");
  pqxx::connection as_op(op.url());
  const std::string p =
      Scalar<std::string>(as_op, "SELECT courier.create_provider(key => 'twilio', capabilities => '{sms.send}')");
  CHECK(Count(as_op, "SELECT count(*) FROM courier.provider_registry") == 1);
  CHECK(pgtest::Refused(as_op, "UPDATE courier.providers SET status = 'active'"));
  pqxx::connection as_producer(producer.url());
  CHECK(pgtest::Refused(as_producer, "SELECT * FROM courier.provider_registry"));
  CHECK(pgtest::Refused(as_producer, "SELECT courier.create_provider(key => 'evil')"));
  CHECK(pgtest::Refused(as_producer, "SELECT courier.take_provider_token($1)", p));
}

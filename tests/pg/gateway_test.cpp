// pgcourier-gateway's SQL (sql/schema/80_gateway.sql and its grants in
// 90_roles.sql): tokens kept as hashes, the api_* functions' tenant scope,
// and the courier_gateway role's least privilege.
#include <doctest/doctest.h>

#include "test_db.hpp"

using pgtest::LoginRole;
using pgtest::Refused;

namespace {
// True when `sql` fails and its error says `text`.
template <typename... Args>
bool FailsWith(pqxx::connection& conn, const std::string& text, const std::string& sql, Args&&... args) {
  const std::string error = pgtest::ErrorOf(conn, sql, std::forward<Args>(args)...);
  if (error.find(text) == std::string::npos) MESSAGE(sql << ": " << (error.empty() ? "no error" : error));
  return error.find(text) != std::string::npos;
}
}  // namespace

TEST_CASE("gateway: a token is returned once, stored as its sha256, verified until revoked") {
  pgtest::TestDb db;
  pqxx::connection admin(db.url());
  pqxx::work txn(admin);
  const auto row = txn.exec1("SELECT id, token FROM courier.create_api_token('acme', 'ci')");
  txn.commit();
  const auto id = row["id"].as<std::string>();
  const auto token = row["token"].as<std::string>();
  CHECK(token.rfind("pgc_", 0) == 0);
  CHECK(token.size() == 4 + 43);  // 32 bytes, base64url without padding
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.api_tokens WHERE token_sha256 = sha256(convert_to($1, 'UTF8'))",
                      token) == 1);
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.api_tokens t WHERE position($1 in row(t.*)::text) > 0",
                      token) == 0);
  CHECK(pgtest::Scalar<std::string>(admin, "SELECT tenant_id FROM courier.verify_api_token($1)", token) == "acme");
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.verify_api_token($1)", token + "x") == 0);
  CHECK(pgtest::Scalar<bool>(admin, "SELECT courier.revoke_api_token($1)", id));
  CHECK_FALSE(pgtest::Scalar<bool>(admin, "SELECT courier.revoke_api_token($1)", id));
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.verify_api_token($1)", token) == 0);
  // An operator token has no tenant; a tenant token needs a valid one.
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.create_api_token(NULL, 'console', true)") == 1);
  CHECK(FailsWith(admin, "tenant_id: needed", "SELECT * FROM courier.create_api_token(NULL, 'x')"));
  CHECK(FailsWith(admin, "tenant_id", "SELECT * FROM courier.create_api_token('ac me', 'x')"));
  CHECK(FailsWith(admin, "an operator token has no tenant", "SELECT * FROM courier.create_api_token('acme', 'x', true)"));
}

TEST_CASE("gateway: api functions see and change only the scope's tenant") {
  pgtest::TestDb db;
  pqxx::connection admin(db.url());
  const std::string sub = pgtest::AddSubscription(admin, "acme", {"*"});
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.api_subscription('acme', $1)", sub) == 1);
  CHECK(FailsWith(admin, "no subscription", "SELECT courier.api_subscription('globex', $1)", sub));
  CHECK(FailsWith(admin, "no subscription", "SELECT courier.api_set_subscription_state('globex', $1, 'pause', NULL)", sub));
  CHECK(FailsWith(admin, "no subscription",
                  "SELECT courier.api_update_subscription('globex', $1, '{\"url\": \"https://x.example/\"}')", sub));
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.subscriptions WHERE paused_at IS NULL AND id = $1", sub) == 1);
  CHECK(pgtest::Scalar<std::string>(admin,
                                    "SELECT courier.api_subscriptions('globex', NULL, NULL)::text") ==
        "{\"next\": null, \"items\": []}");
  CHECK(FailsWith(admin, "not this token's tenant",
                  "SELECT courier.api_publish('globex', '{\"tenant_id\": \"acme\", \"event_type\": \"x\"}', NULL)"));
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.events") == 0);
  // The operator scope (NULL) reaches every tenant.
  CHECK(pgtest::Count(admin, "SELECT count(*) FROM courier.api_set_subscription_state(NULL, $1, 'pause', 'x')", sub) == 1);
}

TEST_CASE("gateway: the courier_gateway role calls the api functions and reads no table") {
  pgtest::TestDb db;
  pqxx::connection admin(db.url());
  const std::string sub = pgtest::AddSubscription(admin, "acme", {"*"});
  LoginRole gateway(db, "courier_gateway");
  pqxx::connection conn(gateway.url());
  CHECK(pgtest::Count(conn, "SELECT count(*) FROM courier.api_subscription('acme', $1)", sub) == 1);
  CHECK(pgtest::Scalar<int>(conn, "SELECT courier.api_schema_version()") >= 1);
  CHECK(pgtest::Count(conn, "SELECT count(*) FROM courier.verify_api_token('pgc_nothing')") == 0);
  CHECK(Refused(conn, "SELECT * FROM courier.api_tokens"));
  CHECK(Refused(conn, "SELECT * FROM courier.create_api_token('acme', 'x')"));
  CHECK(Refused(conn, "SELECT courier.revoke_api_token('tok_x')"));
  CHECK(Refused(conn, "SELECT * FROM courier.subscriptions"));
  CHECK(Refused(conn, "SELECT * FROM courier.subscription_secrets"));
  CHECK(Refused(conn, "SELECT courier.pause_subscription($1)", sub));
  CHECK(Refused(conn, "INSERT INTO courier.events (tenant_id, event_type) VALUES ('acme', 'x')"));
}

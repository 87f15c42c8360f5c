// Credential rotation policies (sql/schema/70_providers.sql): what the
// maintenance leader's courier.start_due_rotations() starts or raises, how a
// command's result and its verification move the policy on, that an auth
// refusal makes the rotation due, and that no tenant sets another's policy.
#include <doctest/doctest.h>

#include <string>

#include "test_db.hpp"

namespace {

using pgtest::Count;
using pgtest::ErrorOf;
using pgtest::Exec;
using pgtest::Scalar;
using pgtest::TestDb;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string AddCredential(pqxx::connection& conn, const std::string& tenant = "acme") {
  return Scalar<std::string>(
      conn,
      "WITH c AS (INSERT INTO courier.credentials (tenant_id) VALUES ($1) RETURNING id), "
      "v AS (INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, fingerprint, status, "
      "      activated_at) SELECT id, 1, 'v1:old', 'fp_old', 'active', now() FROM c) "
      "SELECT id FROM c",
      tenant);
}

long long Events(pqxx::connection& conn, const std::string& cred, const std::string& type) {
  return Count(conn, "SELECT count(*) FROM courier.outbox WHERE subject_id = $1 AND event_type = $2", cred, type);
}

void MakeDue(pqxx::connection& conn, const std::string& cred) {
  Exec(conn,
       "UPDATE courier.credential_rotation_policies SET next_due_at = now() - interval '1 second' "
       "WHERE credential_id = $1",
       cred);
}

std::string State(pqxx::connection& conn, const std::string& cred) {
  return Scalar<std::string>(conn, "SELECT state FROM courier.credential_rotation_policies WHERE credential_id = $1",
                             cred);
}

}  // namespace

TEST_CASE("rotation policy: a due rotation without a command raises CredentialRotationDue and an escalation once") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto cred = AddCredential(conn);
  Exec(conn, "SELECT courier.set_rotation_policy($1, interval '90 days')", cred);
  CHECK(Count(conn, "SELECT count(*) FROM courier.start_due_rotations('d1')") == 0);  // not due
  CHECK(Events(conn, cred, "CredentialRotationDue") == 0);
  MakeDue(conn, cred);
  CHECK(Count(conn, "SELECT count(*) FROM courier.start_due_rotations('d1')") == 0);  // nothing to run
  CHECK(Count(conn, "SELECT count(*) FROM courier.start_due_rotations('d2')") == 0);
  CHECK(Events(conn, cred, "CredentialRotationDue") == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.escalations WHERE source_id = $1", cred) == 1);
  CHECK(State(conn, cred) == "due_raised");
  // an operator's rotation ends it: the policy is idle again, due a period later, the failure resolved
  Exec(conn,
       "INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, fingerprint, status) "
       "VALUES ($1, 2, 'v1:new', 'fp_new', 'rotating')",
       cred);
  CHECK(Scalar<bool>(conn,
                     "SELECT courier.finish_rotation(id, true, NULL, NULL) FROM courier.credential_versions "
                     "WHERE credential_id = $1 AND version = 2",
                     cred));
  CHECK(State(conn, cred) == "idle");
  CHECK(Scalar<bool>(conn,
                     "SELECT next_due_at > now() + interval '89 days' FROM courier.credential_rotation_policies "
                     "WHERE credential_id = $1",
                     cred));
  CHECK(Count(conn, "SELECT count(*) FROM courier.open_failures WHERE source_id = $1", cred) == 0);
}

TEST_CASE("rotation policy: with a command, one worker runs it; its result is stored rotating, then verified") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto cred = AddCredential(conn);
  Exec(conn, "SELECT courier.set_rotation_policy($1, interval '1 day', '/usr/local/bin/new-key')", cred);
  MakeDue(conn, cred);
  CHECK(Scalar<std::string>(conn, "SELECT rotation_command FROM courier.start_due_rotations('d1')") ==
        "/usr/local/bin/new-key");
  CHECK(Count(conn, "SELECT count(*) FROM courier.start_due_rotations('d2')") == 0);  // d1's
  CHECK(State(conn, cred) == "running");
  // another worker's result is not taken; the active secret again is refused
  CHECK(Scalar<bool>(conn, "SELECT courier.store_rotation_result($1, 'd2', 'v1:x', 'fp_x') IS NULL", cred));
  CHECK(Scalar<bool>(conn, "SELECT courier.store_rotation_result($1, 'd1', 'v1:old', 'fp_old') IS NULL", cred));
  CHECK(State(conn, cred) == "idle");
  CHECK(Events(conn, cred, "CredentialRotationFailed") == 1);
  MakeDue(conn, cred);
  CHECK(Count(conn, "SELECT count(*) FROM courier.start_due_rotations('d1')") == 1);
  CHECK(Scalar<int>(conn, "SELECT courier.store_rotation_result($1, 'd1', 'v1:new', 'fp_new')", cred) == 2);
  CHECK(State(conn, cred) == "verifying");
  CHECK(Count(conn, "SELECT count(*) FROM courier.start_due_rotations('d1')") == 0);  // one at a time
  // the verification fails: the prior stays active, the policy retries later
  CHECK(Scalar<bool>(conn,
                     "SELECT courier.finish_rotation(id, false, NULL, 'HTTP 401') FROM "
                     "courier.credential_versions WHERE credential_id = $1 AND version = 2",
                     cred));
  CHECK(Scalar<std::string>(conn,
                            "SELECT string_agg(version || ':' || status, ',' ORDER BY version) FROM "
                            "courier.credential_versions WHERE credential_id = $1",
                            cred) == "1:active,2:failed");
  CHECK(State(conn, cred) == "idle");
  CHECK(Events(conn, cred, "CredentialRotationFailed") == 2);
  CHECK(Events(conn, cred, "CredentialRotationStarted") == 2);
  CHECK(Events(conn, cred, "CredentialRotationVersionStored") == 1);
  // a failed command: recorded and escalated, retried after the retry delay
  MakeDue(conn, cred);
  CHECK(Count(conn, "SELECT count(*) FROM courier.start_due_rotations('d1')") == 1);
  CHECK(Scalar<bool>(conn, "SELECT courier.fail_rotation($1, 'd1', 'timed out after 10000 ms (killed)')", cred));
  CHECK(Scalar<bool>(conn,
                     "SELECT next_due_at BETWEEN now() + interval '14 minutes' AND now() + interval '16 minutes' "
                     "FROM courier.credential_rotation_policies WHERE credential_id = $1",
                     cred));
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.escalations e JOIN courier.failures f ON f.id = e.failure_id "
              "WHERE f.error_code = 'rotation_command_failed'") == 2);  // with the active secret's, above
}

TEST_CASE("rotation policy: an auth refusal degrading a connection makes its credential's rotation due") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto cred = AddCredential(conn);
  Exec(conn, "SELECT courier.set_rotation_policy($1, interval '90 days')", cred);
  const auto c =
      Scalar<std::string>(conn,
                          "INSERT INTO courier.connections (tenant_id, provider, base_url, auth_mode, "
                          "credential_id) VALUES ('acme', 'x', 'https://x.test', 'api_key', $1) RETURNING id",
                          cred);
  CHECK(Scalar<bool>(conn, "SELECT courier.degrade_connection($1, 'HTTP 401', 1)", c));
  CHECK(Scalar<std::string>(conn,
                            "SELECT due_reason FROM courier.credential_rotation_policies WHERE credential_id = $1",
                            cred) == "auth failure on connection " + c);
  Exec(conn, "SELECT courier.start_due_rotations('d1')");
  CHECK(Events(conn, cred, "CredentialRotationDue") == 1);
}

TEST_CASE("rotation policy: bad input names the field, and no tenant sets another tenant's policy") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto cred = AddCredential(conn, "acme");
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_rotation_policy($1, interval '90 days', 'new-key')", cred),
                 "rotation_command: \"new-key\" is not an absolute path"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_rotation_policy($1, interval '0 days')", cred), "rotate_every"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.set_rotation_policy($1, interval '1 day', NULL, 'globex')", cred),
                 "no credential"));
  Exec(conn, "SELECT courier.set_rotation_policy($1, interval '1 day')", cred);
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.clear_rotation_policy($1, 'globex')", cred));
  CHECK(Count(conn, "SELECT count(*) FROM courier.credential_rotation_policies") == 1);
}

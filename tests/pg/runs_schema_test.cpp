// The integration-runs schema (sql/schema/40_integrations.sql) as a contract
// the database keeps for every writer: monotonic run states, enqueue, outcome
// recording, credentials and rotation, probes, release, metrics, retention
// and role rights. Everything here is plain SQL against a fresh database, so
// a test fails only when the schema itself breaks its promise.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgtest::Count;
using pgtest::Exec;
using pgtest::Row;
using pgtest::ErrorOf;
using pgtest::Scalar;
using pgtest::TestDb;

constexpr std::int64_t kStartedUs = 1700000000123456;  // 2023-11-14T22:13:20.123456Z

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> Column(const pqxx::result& r) {
  std::vector<std::string> out;
  for (const auto& row : r) out.push_back(row[0].as<std::string>());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// ---- connections, credentials, runs ----

std::string AddConnection(pqxx::connection& conn, const std::string& tenant, const std::string& status = "active",
                          const std::string& health = "unknown", const std::string& credential_id = "") {
  return Scalar<std::string>(
      conn,
      "INSERT INTO courier.connections (tenant_id, provider, base_url, status, health, auth_mode, credential_id, "
      "                                 health_check_path) "
      "VALUES ($1, 'smsapi', 'https://api.example.test', $2, $3, "
      "        CASE WHEN $4::text = '' THEN 'none' ELSE 'api_key' END, nullif($4::text, ''), '/health') "
      "RETURNING id",
      tenant, status, health, credential_id);
}

struct Credential {
  std::string id;
  std::string version_id;  // version 1, active
};

// A credential with one active version 1 (expiring after `expires_in`, an interval, if not empty).
Credential AddCredential(pqxx::connection& conn, const std::string& tenant, const std::string& expires_in = "") {
  pqxx::work txn(conn);
  Credential c;
  c.id = txn.exec_params1("INSERT INTO courier.credentials (tenant_id, name) VALUES ($1, 'api key') RETURNING id",
                          tenant)[0]
             .as<std::string>();
  c.version_id =
      txn.exec_params1(
             "INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, fingerprint, status, "
             "                                        expires_at, activated_at) "
             "VALUES ($1, 1, 'v1:sealed-one', 'fp-one', 'active', now() + nullif($2, '')::interval, now()) "
             "RETURNING id",
             c.id, expires_in)[0]
          .as<std::string>();
  txn.commit();
  return c;
}

// Stores version 2 as 'rotating' and marks the credential 'rotating'; returns the version's id.
std::string StartRotation(pqxx::connection& conn, const std::string& credential_id) {
  pqxx::work txn(conn);
  auto id = txn.exec_params1(
                   "INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, "
                   "                                        fingerprint, status) "
                   "VALUES ($1, 2, 'v1:sealed-two', 'fp-two', 'rotating') RETURNING id",
                   credential_id)[0]
                .as<std::string>();
  txn.exec_params0("UPDATE courier.credentials SET status = 'rotating' WHERE id = $1", credential_id);
  txn.commit();
  return id;
}

std::string Enqueue(pqxx::connection& conn, const std::string& tenant, const std::string& connection_id,
                    const std::string& idempotency_key = "", const std::string& trace_id = "") {
  return Scalar<std::string>(conn,
                             "SELECT courier.enqueue_run($1, $2, 'send_sms', 'post', '/messages', '{\"to\": \"+1\"}', "
                             "                           '{}'::jsonb, nullif($3, ''), nullif($4, ''))",
                             tenant, connection_id, idempotency_key, trace_id);
}

// What the daemon's claim does: pending -> running under `worker`'s lease.
void Claim(pqxx::connection& conn, const std::string& run_id, const std::string& worker = "worker-1") {
  REQUIRE(Exec(conn,
               "UPDATE courier.runs SET status = 'running', lease_owner = $2, "
               "       lease_expires_at = now() + interval '1 minute', started_at = now() "
               "WHERE id = $1 AND status = 'pending'",
               run_id, worker)
              .affected_rows() == 1);
}

// A claimed run moved straight to a terminal `status` with `attempts`,
// finished `age` ago (an interval).
void Finish(pqxx::connection& conn, const std::string& run_id, const std::string& status, int attempts,
            const std::string& age = "0 seconds") {
  REQUIRE(Exec(conn,
               "UPDATE courier.runs SET status = $2, attempts = $3, lease_owner = NULL, lease_expires_at = NULL, "
               "       completed_at = now() - $4::interval "
               "WHERE id = $1",
               run_id, status, attempts, age)
              .affected_rows() == 1);
}

std::string RunStatus(pqxx::connection& conn, const std::string& run_id) {
  return Scalar<std::string>(conn, "SELECT status FROM courier.runs WHERE id = $1", run_id);
}

long long Outbox(pqxx::connection& conn, const std::string& event_type, const std::string& subject_id) {
  return Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type = $1 AND subject_id = $2", event_type,
               subject_id);
}

// ---- courier.record_run_outcomes ----

struct RunOutcome {
  std::string id;
  int attempt = 1;
  std::string owner = "worker-1";
  std::string status;  // the run's next status
  std::optional<long long> delay_ms;
  std::optional<int> status_code;
  std::string outcome = "ok";
  std::optional<std::string> error_class;
  std::optional<std::string> error_code;
  bool retryable = false;
  std::optional<std::string> summary;
  std::optional<std::string> excerpt;
  std::int64_t started_us = kStartedUs;
  double duration_ms = 12.5;
  std::optional<std::string> external_ref;
  std::optional<std::string> next_action;
  std::optional<int> credential_version;
};

std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// An array literal ({..}) of one field of every outcome; `field` returns the
// element's literal text, or nullopt for NULL.
template <typename F>
std::string ArrayOf(const std::vector<RunOutcome>& rows, F field) {
  std::string out = "{";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) out += ',';
    const std::optional<std::string> v = field(rows[i]);
    out += v ? *v : "NULL";
  }
  return out + "}";
}

std::optional<std::string> Text(const std::optional<std::string>& v) {
  return v ? std::optional<std::string>(Quoted(*v)) : std::nullopt;
}
template <typename T>
std::optional<std::string> Number(const std::optional<T>& v) {
  if (!v) return std::nullopt;
  std::ostringstream s;
  s.precision(17);
  s << *v;
  return s.str();
}

// Calls courier.record_run_outcomes in `txn`; returns the ids that applied, sorted.
std::vector<std::string> RecordOutcomes(pqxx::transaction_base& txn, const std::string& worker,
                                        const std::vector<RunOutcome>& rows) {
  using O = RunOutcome;
  const auto r = txn.exec_params(
      "SELECT x FROM courier.record_run_outcomes($1, $2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], "
      "  $7::int[], $8::text[], $9::text[], $10::text[], $11::boolean[], $12::text[], $13::text[], $14::bigint[], "
      "  $15::float8[], $16::text[], $17::text[], $18::int[]) AS x",
      worker, ArrayOf(rows, [](const O& o) { return Text(o.id); }),
      ArrayOf(rows, [](const O& o) { return Number(std::optional<int>(o.attempt)); }),
      ArrayOf(rows, [](const O& o) { return Text(o.owner); }), ArrayOf(rows, [](const O& o) { return Text(o.status); }),
      ArrayOf(rows, [](const O& o) { return Number(o.delay_ms); }),
      ArrayOf(rows, [](const O& o) { return Number(o.status_code); }),
      ArrayOf(rows, [](const O& o) { return Text(o.outcome); }),
      ArrayOf(rows, [](const O& o) { return Text(o.error_class); }),
      ArrayOf(rows, [](const O& o) { return Text(o.error_code); }),
      ArrayOf(rows, [](const O& o) { return std::optional<std::string>(o.retryable ? "t" : "f"); }),
      ArrayOf(rows, [](const O& o) { return Text(o.summary); }),
      ArrayOf(rows, [](const O& o) { return Text(o.excerpt); }),
      ArrayOf(rows, [](const O& o) { return Number(std::optional<std::int64_t>(o.started_us)); }),
      ArrayOf(rows, [](const O& o) { return Number(std::optional<double>(o.duration_ms)); }),
      ArrayOf(rows, [](const O& o) { return Text(o.external_ref); }),
      ArrayOf(rows, [](const O& o) { return Text(o.next_action); }),
      ArrayOf(rows, [](const O& o) { return Number(o.credential_version); }));
  return Column(r);
}

std::vector<std::string> RecordOutcomes(pqxx::connection& conn, const std::vector<RunOutcome>& rows,
                                        const std::string& worker = "worker-1") {
  pqxx::work txn(conn);
  auto applied = RecordOutcomes(txn, worker, rows);
  txn.commit();
  return applied;
}

RunOutcome Success(const std::string& id, int attempt, const std::string& external_ref = "") {
  RunOutcome o;
  o.id = id;
  o.attempt = attempt;
  o.status = "completed";
  o.status_code = 200;
  o.outcome = "ok";
  if (!external_ref.empty()) o.external_ref = external_ref;
  return o;
}

RunOutcome Failure(const std::string& id, int attempt, const std::string& status, const std::string& error_class,
                   const std::string& next_action = "retry") {
  RunOutcome o;
  o.id = id;
  o.attempt = attempt;
  o.status = status;
  o.outcome = "http_error";
  o.error_class = error_class;
  o.error_code = error_class + "_code";
  o.summary = "attempt " + std::to_string(attempt) + " failed: " + error_class;
  o.next_action = next_action;
  if (status == "pending") o.delay_ms = 0;
  return o;
}

// ---- LISTEN ----

class Notifications : public pqxx::notification_receiver {
 public:
  Notifications(pqxx::connection& conn, const std::string& channel) : pqxx::notification_receiver(conn, channel) {}
  void operator()(const std::string& /*payload*/, int /*backend_pid*/) override { ++received_; }
  int received() const { return received_; }

 private:
  int received_ = 0;
};

// Waits for notifications on `conn`: until the first arrives (at most
// `first_within`), then `settle` more; returns how many arrived in total.
int Collect(pqxx::connection& conn, Notifications& n, std::chrono::milliseconds first_within,
            std::chrono::milliseconds settle) {
  using Clock = std::chrono::steady_clock;
  const int before = n.received();
  conn.get_notifs();
  auto deadline = Clock::now() + first_within;
  bool settling = false;
  while (true) {
    if (!settling && n.received() > before) {
      settling = true;
      deadline = Clock::now() + settle;
    }
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    conn.await_notification(static_cast<long>(left / 1000000), static_cast<long>(left % 1000000));
  }
  return n.received() - before;
}

}  // namespace

using pgtest::LoginRole;
using pgtest::Refused;

TEST_SUITE_BEGIN("runs_schema");

// ============================================================================
// 1. Monotonic run state
// ============================================================================

TEST_CASE("a completed run never goes back to running or pending, and never changes its result") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto run = Enqueue(conn, "acme", AddConnection(conn, "acme"));
  Claim(conn, run);
  Exec(conn,
       "UPDATE courier.runs SET status = 'completed', attempts = 1, lease_owner = NULL, lease_expires_at = NULL, "
       "       completed_at = now(), external_ref = 'SM1' WHERE id = $1",
       run);
  REQUIRE(RunStatus(conn, run) == "completed");

  // The lease columns are consistent with 'running', so only the trigger can refuse.
  const auto to_running = ErrorOf(conn,
                                  "UPDATE courier.runs SET status = 'running', lease_owner = 'worker-2', "
                                  "       lease_expires_at = now() + interval '1 minute', completed_at = NULL "
                                  "WHERE id = $1",
                                  run);
  CHECK(Contains(to_running, "status cannot go from completed to running"));
  const auto to_pending =
      ErrorOf(conn, "UPDATE courier.runs SET status = 'pending', completed_at = NULL WHERE id = $1", run);
  CHECK(Contains(to_pending, "status cannot go from completed to pending"));
  CHECK_THROWS_AS(Exec(conn, "UPDATE courier.runs SET status = 'pending' WHERE id = $1", run), pqxx::check_violation);
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.runs SET external_ref = 'SM2' WHERE id = $1", run),
                 "a completed run cannot be changed"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.runs SET completed_at = now() - interval '1 day' WHERE id = $1", run),
                 "a completed run cannot be changed"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.runs SET attempts = 0 WHERE id = $1", run), "attempts cannot decrease"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.runs SET tenant_id = 'globex' WHERE id = $1", run),
                 "id and tenant_id cannot change"));

  const auto r = Row(conn, "SELECT status, attempts, external_ref, tenant_id FROM courier.runs WHERE id = $1", run);
  CHECK(r[0].as<std::string>() == "completed");
  CHECK(r[1].as<int>() == 1);
  CHECK(r[2].as<std::string>() == "SM1");
  CHECK(r[3].as<std::string>() == "acme");
  // Harmless changes of a completed run (no status, result or attempts change) still go through.
  CHECK(ErrorOf(conn, "UPDATE courier.runs SET updated_at = now() WHERE id = $1", run).empty());
}

TEST_CASE("attempts never decrease, whatever the status") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto run = Enqueue(conn, "acme", AddConnection(conn, "acme"));
  CHECK(ErrorOf(conn, "UPDATE courier.runs SET attempts = 2 WHERE id = $1", run).empty());
  const auto err = ErrorOf(conn, "UPDATE courier.runs SET attempts = 1 WHERE id = $1", run);
  CHECK(Contains(err, "attempts cannot decrease (2 -> 1)"));
  CHECK(Scalar<int>(conn, "SELECT attempts FROM courier.runs WHERE id = $1", run) == 2);
  Claim(conn, run);
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.runs SET attempts = 0 WHERE id = $1", run), "attempts cannot decrease"));
  CHECK(ErrorOf(conn, "UPDATE courier.runs SET attempts = 3 WHERE id = $1", run).empty());
}

TEST_CASE("pending -> running -> pending -> running -> completed is allowed; skipping running is not") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto run = Enqueue(conn, "acme", c, "", "trace-7");
  const auto other = Enqueue(conn, "acme", c);

  // Refused by the guard itself (check_violation naming the transition), not
  // by an error raised while building the refusal.
  CHECK(
      Contains(ErrorOf(conn, "UPDATE courier.runs SET status = 'completed', completed_at = now() WHERE id = $1", other),
               "status cannot go from pending to completed"));
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.runs SET status = 'dead_lettered' WHERE id = $1", other),
                 "status cannot go from pending to dead_lettered"));
  CHECK_THROWS_AS(Exec(conn, "UPDATE courier.runs SET status = 'completed' WHERE id = $1", other),
                  pqxx::check_violation);
  CHECK(RunStatus(conn, other) == "pending");

  Claim(conn, run);
  CHECK(ErrorOf(conn,
                "UPDATE courier.runs SET status = 'pending', attempts = 1, lease_owner = NULL, "
                "       lease_expires_at = NULL WHERE id = $1",
                run)
            .empty());
  CHECK(RunStatus(conn, run) == "pending");
  Claim(conn, run, "worker-2");
  CHECK(ErrorOf(conn,
                "UPDATE courier.runs SET status = 'completed', attempts = 2, lease_owner = NULL, "
                "       lease_expires_at = NULL, completed_at = now() WHERE id = $1",
                run)
            .empty());
  CHECK(RunStatus(conn, run) == "completed");
  // Reaching a terminal state is announced once, with the run's tenant and trace.
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationRunCompleted' AND subject_id = $1 "
              "AND tenant_id = 'acme' AND trace_id = 'trace-7' AND body->>'status' = 'completed'",
              run) == 1);

  // A pending run may be cancelled (pending -> failed), which is announced too.
  CHECK(ErrorOf(conn, "UPDATE courier.runs SET status = 'failed', completed_at = now() WHERE id = $1", other).empty());
  CHECK(Outbox(conn, "IntegrationRunFailed", other) == 1);
}

TEST_CASE("failed and dead-lettered runs go back to pending only through courier.replay_run") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto failed = Enqueue(conn, "acme", c);
  const auto dead = Enqueue(conn, "acme", c);
  const auto dead2 = Enqueue(conn, "acme", c);
  const auto dead3 = Enqueue(conn, "acme", c);
  Exec(conn, "UPDATE courier.runs SET status = 'failed', completed_at = now() WHERE id = $1", failed);
  Claim(conn, dead);
  Exec(conn, "UPDATE courier.runs SET rate_limited_attempts = 2 WHERE id = $1", dead);
  Finish(conn, dead, "dead_lettered", 3);
  Claim(conn, dead2);
  Finish(conn, dead2, "dead_lettered", 1);
  Claim(conn, dead3);
  Finish(conn, dead3, "dead_lettered", 1);

  const auto from_failed = ErrorOf(conn, "UPDATE courier.runs SET status = 'pending' WHERE id = $1", failed);
  CHECK(Contains(from_failed, "status cannot go from failed to pending"));
  const auto from_dead =
      ErrorOf(conn, "UPDATE courier.runs SET status = 'pending', completed_at = NULL WHERE id = $1", dead);
  CHECK(Contains(from_dead, "status cannot go from dead_lettered to pending"));
  CHECK(RunStatus(conn, failed) == "failed");
  CHECK(RunStatus(conn, dead) == "dead_lettered");

  CHECK(Scalar<bool>(conn, "SELECT courier.replay_run($1)", dead));
  const auto r = Row(conn,
                     "SELECT status, attempts, attempt_budget_base, rate_limited_attempts, completed_at IS NULL, "
                     "       last_error, next_attempt_at <= now(), lease_owner IS NULL "
                     "FROM courier.runs WHERE id = $1",
                     dead);
  CHECK(r[0].as<std::string>() == "pending");
  CHECK(r[1].as<int>() == 3);  // attempts stay
  CHECK(r[2].as<int>() == 3);  // the fresh budget starts from them
  CHECK(r[3].as<int>() == 0);
  CHECK(r[4].as<bool>());
  CHECK(r[5].as<std::string>() == "replayed (was dead_lettered)");
  CHECK(r[6].as<bool>());
  CHECK(r[7].as<bool>());

  CHECK(Scalar<bool>(conn, "SELECT courier.replay_run($1)", failed));
  CHECK(RunStatus(conn, failed) == "pending");
  CHECK(Scalar<int>(conn, "SELECT attempt_budget_base FROM courier.runs WHERE id = $1", failed) == 0);

  // replay_run's permission covers only its own run, and ends with the call.
  {
    pqxx::work txn(conn);
    CHECK(txn.exec_params1("SELECT courier.replay_run($1)", dead3)[0].as<bool>());
    CHECK_THROWS_AS(
        txn.exec_params("UPDATE courier.runs SET status = 'pending', completed_at = NULL WHERE id = $1", dead2),
        pqxx::check_violation);
  }
  CHECK(RunStatus(conn, dead2) == "dead_lettered");
  CHECK(RunStatus(conn, dead3) == "dead_lettered");  // rolled back with the transaction
}

TEST_CASE("replay_run refuses a completed run, ignores an unfinished one and names a missing one") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto done = Enqueue(conn, "acme", c);
  Claim(conn, done);
  Finish(conn, done, "completed", 1);
  const auto err = ErrorOf(conn, "SELECT courier.replay_run($1)", done);
  CHECK(Contains(err, "never executed again"));
  CHECK(RunStatus(conn, done) == "completed");
  CHECK(Scalar<int>(conn, "SELECT attempt_budget_base FROM courier.runs WHERE id = $1", done) == 0);

  const auto pending = Enqueue(conn, "acme", c);
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.replay_run($1)", pending));
  const auto running = Enqueue(conn, "acme", c);
  Claim(conn, running);
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.replay_run($1)", running));
  CHECK(RunStatus(conn, running) == "running");
  CHECK(Contains(ErrorOf(conn, "SELECT courier.replay_run('run_missing')"), "does not exist"));
}

// ============================================================================
// 2. enqueue_run
// ============================================================================

TEST_CASE("enqueue_run creates a pending run, once per tenant and idempotency key") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c1 = AddConnection(conn, "acme");
  const auto c2 = AddConnection(conn, "acme");

  const auto first = Enqueue(conn, "acme", c1, "order-1", "trace-1");
  CHECK(first.rfind("run_", 0) == 0);
  const auto r = Row(conn,
                     "SELECT status, attempts, method, path, body, connection_id, trace_id, idempotency_key, "
                     "       next_attempt_at <= now(), lease_owner IS NULL, operation "
                     "FROM courier.runs WHERE id = $1",
                     first);
  CHECK(r[0].as<std::string>() == "pending");
  CHECK(r[1].as<int>() == 0);
  CHECK(r[2].as<std::string>() == "POST");  // upper-cased
  CHECK(r[3].as<std::string>() == "/messages");
  CHECK(r[4].as<std::string>() == "{\"to\": \"+1\"}");
  CHECK(r[5].as<std::string>() == c1);
  CHECK(r[6].as<std::string>() == "trace-1");
  CHECK(r[7].as<std::string>() == "order-1");
  CHECK(r[8].as<bool>());
  CHECK(r[9].as<bool>());
  CHECK(r[10].as<std::string>() == "send_sms");

  // The same key for the same tenant returns the first run and creates nothing, whatever else differs.
  CHECK(Enqueue(conn, "acme", c2, "order-1", "trace-2") == first);
  CHECK(Count(conn, "SELECT count(*) FROM courier.runs") == 1);
  CHECK(Scalar<std::string>(conn, "SELECT connection_id FROM courier.runs WHERE id = $1", first) == c1);

  // Another tenant's key space is separate; no key means no deduplication.
  const auto other_tenant = Enqueue(conn, "globex", AddConnection(conn, "globex"), "order-1");
  CHECK(other_tenant != first);
  const auto a = Enqueue(conn, "acme", c1);
  const auto b = Enqueue(conn, "acme", c1);
  CHECK(a != b);
  CHECK(Count(conn, "SELECT count(*) FROM courier.runs") == 4);

  // Defaults: POST to / with empty headers.
  const auto d = Scalar<std::string>(conn, "SELECT courier.enqueue_run('acme', $1, 'ping')", c1);
  const auto dr = Row(conn, "SELECT method, path, headers::text, body IS NULL FROM courier.runs WHERE id = $1", d);
  CHECK(dr[0].as<std::string>() == "POST");
  CHECK(dr[1].as<std::string>() == "/");
  CHECK(dr[2].as<std::string>() == "{}");
  CHECK(dr[3].as<bool>());
}

TEST_CASE("enqueue_run requires a tenant, a connection and an operation") {
  TestDb db;
  pqxx::connection conn(db.url());
  for (const std::string args : {"NULL, 'conn_x', 'op'", "'', 'conn_x', 'op'", "'acme', NULL, 'op'",
                                 "'acme', 'conn_x', NULL", "'acme', 'conn_x', ''"}) {
    CAPTURE(args);
    CHECK(Contains(ErrorOf(conn, "SELECT courier.enqueue_run(" + args + ")"),
                   "tenant_id, connection_id and operation are required"));
  }
  CHECK(Count(conn, "SELECT count(*) FROM courier.runs") == 0);
}

TEST_CASE("a committed enqueue_run notifies courier_runs; an uncommitted or rolled-back one does not") {
  TestDb db;
  pqxx::connection producer(db.url());
  const auto c = AddConnection(producer, "acme");
  pqxx::connection listener(db.url());
  Notifications runs(listener, "courier_runs");
  CHECK(Collect(listener, runs, 0ms, 0ms) == 0);

  {
    pqxx::work txn(producer);
    txn.exec_params("SELECT courier.enqueue_run('acme', $1, 'send_sms')", c);
    CHECK(Collect(listener, runs, 300ms, 0ms) == 0);  // not before commit
    txn.abort();
  }
  CHECK(Collect(listener, runs, 300ms, 0ms) == 0);

  {
    pqxx::work txn(producer);
    txn.exec_params("SELECT courier.enqueue_run('acme', $1, 'send_sms')", c);
    CHECK(Collect(listener, runs, 200ms, 0ms) == 0);
    txn.commit();
  }
  // One notification per committed transaction (a rolled-back one would have been queued ahead of it).
  CHECK(Collect(listener, runs, 5000ms, 100ms) == 1);
}

// ============================================================================
// 3. record_run_outcomes
// ============================================================================

TEST_CASE("record_run_outcomes applies a result only for the lease owner at the expected attempt") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto mine = Enqueue(conn, "acme", c);
  const auto taken_over = Enqueue(conn, "acme", c);
  const auto wrong_attempt = Enqueue(conn, "acme", c);
  for (const auto& id : {mine, taken_over, wrong_attempt}) Claim(conn, id, "worker-1");
  // Another daemon took this lease over after worker-1's expired.
  Exec(conn, "UPDATE courier.runs SET lease_owner = 'worker-2' WHERE id = $1", taken_over);

  auto late = Failure(taken_over, 1, "failed", "validation");
  auto skipped = Failure(wrong_attempt, 2, "pending", "transient");
  const auto applied = RecordOutcomes(conn, {Success(mine, 1, "SM1"), late, skipped});
  CHECK(applied == std::vector<std::string>{mine});

  CHECK(RunStatus(conn, mine) == "completed");
  const auto t =
      Row(conn, "SELECT status, lease_owner, attempts, last_error IS NULL FROM courier.runs WHERE id = $1", taken_over);
  CHECK(t[0].as<std::string>() == "running");
  CHECK(t[1].as<std::string>() == "worker-2");
  CHECK(t[2].as<int>() == 0);
  CHECK(t[3].as<bool>());
  const auto w = Row(conn, "SELECT status, lease_owner, attempts FROM courier.runs WHERE id = $1", wrong_attempt);
  CHECK(w[0].as<std::string>() == "running");
  CHECK(w[1].as<std::string>() == "worker-1");
  CHECK(w[2].as<int>() == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts WHERE run_id <> $1", mine) == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures") == 0);

  // A result for a run that is no longer running changes nothing either.
  CHECK(RecordOutcomes(conn, {Success(mine, 2, "SM2")}).empty());
  CHECK(Scalar<std::string>(conn, "SELECT external_ref FROM courier.runs WHERE id = $1", mine) == "SM1");
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts WHERE run_id = $1", mine) == 1);
}

TEST_CASE("a retryable failed attempt is recorded, opens a failure and schedules the retry") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto run = Enqueue(conn, "acme", c, "", "trace-1");
  Claim(conn, run);

  RunOutcome o;
  o.id = run;
  o.status = "pending";
  o.delay_ms = 30000;
  o.status_code = 503;
  o.outcome = "http_error";
  o.error_class = "transient";
  o.error_code = "http_503";
  o.retryable = true;
  o.summary = "HTTP 503 Service Unavailable";
  o.excerpt = R"({"error": "busy"})";
  o.external_ref = "SM-too-early";
  o.next_action = "retry";
  o.credential_version = 1;
  CHECK(RecordOutcomes(conn, {o}, "daemon-a") == std::vector<std::string>{run});

  const auto r =
      Row(conn,
          "SELECT status, attempts, lease_owner IS NULL AND lease_expires_at IS NULL, "
          "       next_attempt_at BETWEEN now() + interval '25 seconds' AND now() + interval '35 seconds', "
          "       last_status_code, last_error, last_error_code, external_ref IS NULL, completed_at IS NULL, "
          "       response_excerpt, rate_limited_attempts "
          "FROM courier.runs WHERE id = $1",
          run);
  CHECK(r[0].as<std::string>() == "pending");
  CHECK(r[1].as<int>() == 1);
  CHECK(r[2].as<bool>());
  CHECK(r[3].as<bool>());
  CHECK(r[4].as<int>() == 503);
  CHECK(r[5].as<std::string>() == "HTTP 503 Service Unavailable");
  CHECK(r[6].as<std::string>() == "http_503");
  CHECK(r[7].as<bool>());  // external_ref is stored only on completion
  CHECK(r[8].as<bool>());
  CHECK(r[9].as<std::string>() == R"({"error": "busy"})");
  CHECK(r[10].as<int>() == 0);

  const auto a = Row(conn,
                     "SELECT attempt, status_code, outcome, error_class, error_code, retryable, error_summary, "
                     "       credential_version, worker, duration_ms, "
                     "       abs((extract(epoch FROM started_at) * 1000000)::bigint - $2) <= 1 "
                     "FROM courier.run_attempts WHERE run_id = $1",
                     run, kStartedUs);
  CHECK(a[0].as<int>() == 1);
  CHECK(a[1].as<int>() == 503);
  CHECK(a[2].as<std::string>() == "http_error");
  CHECK(a[3].as<std::string>() == "transient");
  CHECK(a[4].as<std::string>() == "http_503");
  CHECK(a[5].as<bool>());
  CHECK(a[6].as<std::string>() == "HTTP 503 Service Unavailable");
  CHECK(a[7].as<int>() == 1);
  CHECK(a[8].as<std::string>() == "daemon-a");
  CHECK(a[9].as<double>() == doctest::Approx(12.5));
  CHECK(a[10].as<bool>());

  const auto f = Row(conn,
                     "SELECT id, tenant_id, source, category, error_code, message, attempt, next_action, trace_id, "
                     "       resolved_at IS NULL "
                     "FROM courier.failures WHERE source_id = $1",
                     run);
  CHECK(f[1].as<std::string>() == "acme");
  CHECK(f[2].as<std::string>() == "run");
  CHECK(f[3].as<std::string>() == "transient");
  CHECK(f[4].as<std::string>() == "http_503");
  CHECK(f[5].as<std::string>() == "HTTP 503 Service Unavailable");
  CHECK(f[6].as<int>() == 1);
  CHECK(f[7].as<std::string>() == "retry");
  CHECK(f[8].as<std::string>() == "trace-1");
  CHECK(f[9].as<bool>());
  const auto failure = f[0].as<std::string>();
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationFailed' AND subject_id = $1 "
              "AND tenant_id = 'acme' AND trace_id = 'trace-1' AND body->>'source_id' = $2 "
              "AND body->>'next_action' = 'retry'",
              failure, run) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.escalations") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type LIKE 'IntegrationRun%'") == 0);
}

TEST_CASE("rate-limited attempts are counted; blocked destinations are validation failures") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto limited = Enqueue(conn, "acme", c);
  const auto blocked = Enqueue(conn, "acme", c);

  for (int attempt = 1; attempt <= 2; ++attempt) {
    Claim(conn, limited);
    auto o = Failure(limited, attempt, "pending", "rate_limited");
    o.status_code = 429;
    CHECK(RecordOutcomes(conn, {o}).size() == 1);
  }
  CHECK(Scalar<int>(conn, "SELECT rate_limited_attempts FROM courier.runs WHERE id = $1", limited) == 2);
  CHECK(Scalar<int>(conn, "SELECT attempts FROM courier.runs WHERE id = $1", limited) == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures WHERE source_id = $1 AND category = 'rate_limited'",
              limited) == 2);
  // A transient failure does not count as rate-limited.
  Claim(conn, limited);
  CHECK(RecordOutcomes(conn, {Failure(limited, 3, "pending", "transient")}).size() == 1);
  CHECK(Scalar<int>(conn, "SELECT rate_limited_attempts FROM courier.runs WHERE id = $1", limited) == 2);

  Claim(conn, blocked);
  RunOutcome o;
  o.id = blocked;
  o.status = "failed";
  o.outcome = "blocked";
  o.error_class = "blocked_destination";  // no error_code, no next_action
  o.summary = "destination resolves to a private address";
  CHECK(RecordOutcomes(conn, {o}).size() == 1);
  CHECK(Scalar<std::string>(conn, "SELECT error_class FROM courier.run_attempts WHERE run_id = $1", blocked) ==
        "blocked_destination");
  const auto f =
      Row(conn, "SELECT category, error_code, next_action FROM courier.failures WHERE source_id = $1", blocked);
  CHECK(f[0].as<std::string>() == "validation");
  CHECK(f[1].as<std::string>() == "blocked");  // the outcome, for want of an error code
  CHECK(f[2].as<std::string>() == "retry");    // the default next action
  CHECK(RunStatus(conn, blocked) == "failed");
  CHECK(Outbox(conn, "IntegrationRunFailed", blocked) == 1);
}

TEST_CASE("an escalating failure records an escalation and announces both on the outbox") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto run = Enqueue(conn, "acme", c, "", "trace-9");
  Claim(conn, run);
  auto o = Failure(run, 1, "pending", "auth", "escalate");
  o.status_code = 401;
  o.summary = "HTTP 401 invalid api key";
  CHECK(RecordOutcomes(conn, {o}) == std::vector<std::string>{run});

  const auto failure = Scalar<std::string>(conn, "SELECT id FROM courier.failures WHERE source_id = $1", run);
  const auto e = Row(conn,
                     "SELECT id, tenant_id, source, source_id, reason, acknowledged_at IS NULL "
                     "FROM courier.escalations WHERE failure_id = $1",
                     failure);
  CHECK(e[1].as<std::string>() == "acme");
  CHECK(e[2].as<std::string>() == "run");
  CHECK(e[3].as<std::string>() == run);
  CHECK(e[4].as<std::string>() == "auth: HTTP 401 invalid api key");
  CHECK(e[5].as<bool>());
  const auto escalation = e[0].as<std::string>();

  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationFailed' AND subject_id = $1 "
              "AND tenant_id = 'acme' AND trace_id = 'trace-9' AND body->>'category' = 'auth'",
              failure) == 1);
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationFailureEscalated' "
              "AND subject_id = $1 AND tenant_id = 'acme' AND trace_id = 'trace-9' AND body->>'escalation_id' = $2",
              failure, escalation) == 1);
  CHECK(Scalar<long long>(conn, "SELECT open_escalations FROM courier.run_queue_metrics('1 day')") == 1);
}

TEST_CASE("completing a run stores its external_ref, resolves its open failures and announces both") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto run = Enqueue(conn, "acme", c, "", "trace-1");
  const auto bystander = Enqueue(conn, "acme", c);

  Claim(conn, run);
  auto first = Failure(run, 1, "pending", "transient");
  first.external_ref = "SM-not-yet";
  CHECK(RecordOutcomes(conn, {first}).size() == 1);
  CHECK(Scalar<bool>(conn, "SELECT external_ref IS NULL FROM courier.runs WHERE id = $1", run));
  Claim(conn, run);
  CHECK(RecordOutcomes(conn, {Failure(run, 2, "pending", "auth")}).size() == 1);
  Claim(conn, bystander);
  CHECK(RecordOutcomes(conn, {Failure(bystander, 1, "pending", "transient")}).size() == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures WHERE resolved_at IS NULL") == 3);

  Claim(conn, run);
  CHECK(RecordOutcomes(conn, {Success(run, 3, "SM123")}) == std::vector<std::string>{run});

  const auto r = Row(conn,
                     "SELECT status, attempts, external_ref, completed_at IS NOT NULL, latency_ms >= 0, "
                     "       lease_owner IS NULL, last_status_code "
                     "FROM courier.runs WHERE id = $1",
                     run);
  CHECK(r[0].as<std::string>() == "completed");
  CHECK(r[1].as<int>() == 3);
  CHECK(r[2].as<std::string>() == "SM123");
  CHECK(r[3].as<bool>());
  CHECK(r[4].as<bool>());
  CHECK(r[5].as<bool>());
  CHECK(r[6].as<int>() == 200);
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts WHERE run_id = $1", run) == 3);

  CHECK(Count(conn,
              "SELECT count(*) FROM courier.failures WHERE source_id = $1 AND resolved_at IS NOT NULL "
              "AND resolution = 'completed'",
              run) == 2);
  // Only this run's failures.
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures WHERE source_id = $1 AND resolved_at IS NULL", bystander) ==
        1);

  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationRunCompleted' AND subject_id = $1 "
              "AND tenant_id = 'acme' AND trace_id = 'trace-1' AND body->>'external_ref' = 'SM123' "
              "AND (body->>'attempts')::int = 3 AND body->>'run_id' = $1",
              run) == 1);
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox o JOIN courier.failures f ON f.id = o.subject_id "
              "WHERE o.event_type = 'IntegrationFailureResolved' AND f.source_id = $1 AND o.tenant_id = 'acme' "
              "AND o.trace_id = 'trace-1' AND o.body->>'resolution' = 'completed'",
              run) == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationFailureResolved'") == 2);
}

TEST_CASE("dead-lettering a run resolves the failures of its earlier attempts") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto run = Enqueue(conn, "acme", c);
  Claim(conn, run);
  CHECK(RecordOutcomes(conn, {Failure(run, 1, "pending", "transient")}).size() == 1);
  const auto earlier = Scalar<std::string>(conn, "SELECT id FROM courier.failures WHERE source_id = $1", run);
  Claim(conn, run);
  CHECK(RecordOutcomes(conn, {Failure(run, 2, "dead_lettered", "poison", "dead_letter")}).size() == 1);

  CHECK(RunStatus(conn, run) == "dead_lettered");
  CHECK(Scalar<bool>(conn, "SELECT completed_at IS NOT NULL FROM courier.runs WHERE id = $1", run));
  const auto f = Row(conn, "SELECT resolved_at IS NOT NULL, resolution FROM courier.failures WHERE id = $1", earlier);
  CHECK(f[0].as<bool>());
  CHECK(f[1].as<std::string>() == "dead_lettered");
  CHECK(Outbox(conn, "IntegrationFailureResolved", earlier) == 1);
  CHECK(Outbox(conn, "IntegrationRunDeadLettered", run) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_dead_letters WHERE run_id = $1", run) == 1);
}

TEST_CASE("an escalation raised by the attempt that dead-letters a run stays open") {
  // The attempt that dead-letters the run is the reason for its escalation;
  // resolving that failure in the same call would hide the escalation from
  // courier.open_failures and from run_queue_metrics().open_escalations.
  TestDb db;
  pqxx::connection conn(db.url());
  const auto run = Enqueue(conn, "acme", AddConnection(conn, "acme"));
  Claim(conn, run);
  CHECK(RecordOutcomes(conn, {Failure(run, 1, "dead_lettered", "poison", "escalate")}).size() == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.escalations WHERE source_id = $1", run) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.open_failures WHERE source_id = $1", run) == 1);
  CHECK(Scalar<long long>(conn, "SELECT open_escalations FROM courier.run_queue_metrics('1 day')") == 1);
}

TEST_CASE("record_run_outcomes can be called twice in one transaction and again in the next") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto a = Enqueue(conn, "acme", c);
  const auto b = Enqueue(conn, "acme", c);
  Claim(conn, a);
  Claim(conn, b);
  {
    pqxx::work txn(conn);
    CHECK(RecordOutcomes(txn, "worker-1", {Failure(a, 1, "pending", "transient")}) == std::vector<std::string>{a});
    // The second call must not see (or re-apply) the first call's rows.
    CHECK(RecordOutcomes(txn, "worker-1", {Success(b, 1, "SMb")}) == std::vector<std::string>{b});
    txn.commit();
  }
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts WHERE run_id = $1", a) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts WHERE run_id = $1", b) == 1);
  CHECK(RunStatus(conn, a) == "pending");
  CHECK(RunStatus(conn, b) == "completed");

  Claim(conn, a);
  CHECK(RecordOutcomes(conn, {Success(a, 2, "SMa")}) == std::vector<std::string>{a});
  CHECK(RunStatus(conn, a) == "completed");
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts WHERE run_id = $1", a) == 2);
  // And on a second session (the temporary table is per session).
  pqxx::connection other(db.url());
  const auto d = Enqueue(other, "acme", c);
  Claim(other, d);
  CHECK(RecordOutcomes(other, {Success(d, 1)}) == std::vector<std::string>{d});
}

// ============================================================================
// 4. Credentials and rotation
// ============================================================================

TEST_CASE("a credential without an active version is refused at commit") {
  TestDb db;
  pqxx::connection conn(db.url());
  {
    pqxx::work txn(conn);
    const auto id =
        txn.exec1("INSERT INTO courier.credentials (tenant_id) VALUES ('acme') RETURNING id")[0].as<std::string>();
    // Deferred: the statements succeed, the commit does not.
    txn.exec_params0(
        "INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, fingerprint, status) "
        "VALUES ($1, 1, 'v1:x', 'fp', 'rotating')",
        id);
    try {
      txn.commit();
      FAIL("a credential with no active version was committed");
    } catch (const pqxx::sql_error& e) {
      CHECK(Contains(e.what(), "must have exactly one active version"));
    }
  }
  CHECK(Count(conn, "SELECT count(*) FROM courier.credentials") == 0);

  // Retiring the only active version is refused the same way.
  const auto cred = AddCredential(conn, "acme");
  CHECK(Contains(
      ErrorOf(conn, "UPDATE courier.credential_versions SET status = 'inactive' WHERE id = $1", cred.version_id),
      "must have exactly one active version"));
  CHECK(Contains(ErrorOf(conn, "DELETE FROM courier.credential_versions WHERE id = $1", cred.version_id),
                 "must have exactly one active version"));
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.credential_versions WHERE id = $1", cred.version_id) ==
        "active");

  // A revoked credential needs no active version.
  {
    pqxx::work txn(conn);
    txn.exec_params0("UPDATE courier.credentials SET status = 'revoked' WHERE id = $1", cred.id);
    txn.exec_params0("UPDATE courier.credential_versions SET status = 'revoked' WHERE credential_id = $1", cred.id);
    CHECK_NOTHROW(txn.commit());
  }
}

TEST_CASE("a credential cannot have two active versions") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto cred = AddCredential(conn, "acme");
  CHECK_THROWS_AS(Exec(conn,
                       "INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, fingerprint, "
                       "                                        status) "
                       "VALUES ($1, 2, 'v1:y', 'fp2', 'active')",
                       cred.id),
                  pqxx::unique_violation);
  CHECK(Count(conn, "SELECT count(*) FROM courier.credential_versions WHERE credential_id = $1", cred.id) == 1);
  // Swapping within one transaction (old one first) is fine.
  {
    pqxx::work txn(conn);
    txn.exec_params0("UPDATE courier.credential_versions SET status = 'inactive' WHERE id = $1", cred.version_id);
    txn.exec_params0(
        "INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, fingerprint, status) "
        "VALUES ($1, 2, 'v1:y', 'fp2', 'active')",
        cred.id);
    CHECK_NOTHROW(txn.commit());
  }
  CHECK(Count(conn, "SELECT count(*) FROM courier.credential_versions WHERE credential_id = $1 AND status = 'active'",
              cred.id) == 1);
}

TEST_CASE("a verified rotation activates the new version, retires the old one and runs degraded connections again") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto cred = AddCredential(conn, "acme");
  const auto other_cred = AddCredential(conn, "acme");
  const auto degraded = AddConnection(conn, "acme", "degraded", "unknown", cred.id);
  const auto retired = AddConnection(conn, "acme", "retired", "unknown", cred.id);
  const auto unrelated = AddConnection(conn, "acme", "degraded", "unknown", other_cred.id);
  // A run refused with the old key has an open auth failure.
  const auto run = Enqueue(conn, "acme", degraded);
  Claim(conn, run);
  CHECK(RecordOutcomes(conn, {Failure(run, 1, "pending", "auth")}).size() == 1);
  const auto v2 = StartRotation(conn, cred.id);

  CHECK(Scalar<bool>(conn, "SELECT courier.finish_rotation($1, true, $2, NULL)", v2, degraded));

  const auto nv =
      Row(conn, "SELECT status, activated_at IS NOT NULL FROM courier.credential_versions WHERE id = $1", v2);
  CHECK(nv[0].as<std::string>() == "active");
  CHECK(nv[1].as<bool>());
  const auto ov = Row(conn, "SELECT status, retired_at IS NOT NULL FROM courier.credential_versions WHERE id = $1",
                      cred.version_id);
  CHECK(ov[0].as<std::string>() == "inactive");
  CHECK(ov[1].as<bool>());
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.credentials WHERE id = $1", cred.id) == "active");
  const auto d = Row(conn, "SELECT status, status_reason FROM courier.connections WHERE id = $1", degraded);
  CHECK(d[0].as<std::string>() == "active");
  CHECK(d[1].as<std::string>() == "credential rotated to version 2");
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.connections WHERE id = $1", retired) == "retired");
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.connections WHERE id = $1", unrelated) == "degraded");
  const auto f =
      Row(conn, "SELECT resolved_at IS NOT NULL, resolution FROM courier.failures WHERE source_id = $1", run);
  CHECK(f[0].as<bool>());
  CHECK(f[1].as<std::string>() == "credential rotated");
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'CredentialRotated' AND subject_id = $1 "
              "AND tenant_id = 'acme' AND (body->>'version')::int = 2 AND (body->>'previous_version')::int = 1 "
              "AND body->>'fingerprint' = 'fp-two' AND body->>'verified_with' = $2",
              cred.id, degraded) == 1);
}

TEST_CASE("a failed verification keeps the prior version active and escalates") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto cred = AddCredential(conn, "acme");
  const auto connection = AddConnection(conn, "acme", "degraded", "unknown", cred.id);
  const auto v2 = StartRotation(conn, cred.id);

  CHECK(Scalar<bool>(conn, "SELECT courier.finish_rotation($1, false, $2, 'HTTP 401 from /me')", v2, connection));

  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.credential_versions WHERE id = $1", cred.version_id) ==
        "active");
  const auto v = Row(conn,
                     "SELECT status, verification_error, retired_at IS NOT NULL "
                     "FROM courier.credential_versions WHERE id = $1",
                     v2);
  CHECK(v[0].as<std::string>() == "failed");
  CHECK(v[1].as<std::string>() == "HTTP 401 from /me");
  CHECK(v[2].as<bool>());
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.credentials WHERE id = $1", cred.id) == "active");
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.connections WHERE id = $1", connection) == "degraded");

  const auto f = Row(conn,
                     "SELECT id, tenant_id, source, source_id, category, error_code, next_action, message "
                     "FROM courier.failures");
  CHECK(f[1].as<std::string>() == "acme");
  CHECK(f[2].as<std::string>() == "probe");
  CHECK(f[3].as<std::string>() == connection);
  CHECK(f[4].as<std::string>() == "auth");
  CHECK(f[5].as<std::string>() == "rotation_verification_failed");
  CHECK(f[6].as<std::string>() == "escalate");
  CHECK(Contains(f[7].as<std::string>(), "version 2"));
  CHECK(Contains(f[7].as<std::string>(), "HTTP 401 from /me"));
  const auto failure = f[0].as<std::string>();
  CHECK(Count(conn, "SELECT count(*) FROM courier.escalations WHERE failure_id = $1", failure) == 1);
  CHECK(Outbox(conn, "IntegrationFailureEscalated", failure) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type = 'CredentialRotated'") == 0);
}

TEST_CASE("finish_rotation of a version that is not rotating returns false and changes nothing") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto cred = AddCredential(conn, "acme");
  const auto connection = AddConnection(conn, "acme", "active", "unknown", cred.id);
  const auto v2 = StartRotation(conn, cred.id);
  REQUIRE(Scalar<bool>(conn, "SELECT courier.finish_rotation($1, true, $2, NULL)", v2, connection));
  const auto outbox_before = Count(conn, "SELECT count(*) FROM courier.outbox");

  // Another daemon finishing the same rotation, in either direction.
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.finish_rotation($1, false, $2, 'late')", v2, connection));
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.finish_rotation($1, true, $2, NULL)", v2, connection));
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.finish_rotation($1, true, $2, NULL)", cred.version_id, connection));
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.finish_rotation('crv_missing', true, NULL, NULL)"));

  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.credential_versions WHERE id = $1", v2) == "active");
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.credential_versions WHERE id = $1", cred.version_id) ==
        "inactive");
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox") == outbox_before);
}

// ============================================================================
// 5-6. Connection health: probes and degradation
// ============================================================================

TEST_CASE("failing probes degrade and then open the circuit; a passing probe recovers the connection") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme", "active", "healthy");
  const std::string kState =
      "SELECT health, consecutive_probe_failures, last_health_error, last_checked_at IS NOT NULL "
      "FROM courier.connections WHERE id = $1";
  const auto degraded_events = [&] { return Outbox(conn, "IntegrationConnectionDegraded", c); };

  CHECK(Scalar<std::string>(conn, "SELECT courier.record_probe($1, false, 503, 'HTTP 503', 3)", c) == "degraded");
  auto s = Row(conn, kState, c);
  CHECK(s[0].as<std::string>() == "degraded");
  CHECK(s[1].as<int>() == 1);
  CHECK(s[2].as<std::string>() == "HTTP 503");
  CHECK(s[3].as<bool>());
  CHECK(degraded_events() == 1);
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.failures WHERE source = 'probe' AND source_id = $1 "
              "AND error_code = 'probe_status_503' AND category = 'transient' AND next_action = 'retry' "
              "AND tenant_id = 'acme' AND message = 'HTTP 503'",
              c) == 1);

  CHECK(Scalar<std::string>(conn, "SELECT courier.record_probe($1, false, 503, 'HTTP 503', 3)", c) == "degraded");
  CHECK(Row(conn, kState, c)[1].as<int>() == 2);
  CHECK(degraded_events() == 1);  // no change of health, no event

  CHECK(Scalar<std::string>(conn, "SELECT courier.record_probe($1, false, NULL, 'connect timeout', 3)", c) ==
        "unhealthy");
  s = Row(conn, kState, c);
  CHECK(s[0].as<std::string>() == "unhealthy");
  CHECK(s[1].as<int>() == 3);
  CHECK(s[2].as<std::string>() == "connect timeout");
  CHECK(degraded_events() == 2);
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationConnectionDegraded' "
              "AND subject_id = $1 AND body->>'health' = 'unhealthy'",
              c) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures WHERE source_id = $1 AND error_code = 'probe_error'", c) ==
        1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures WHERE source_id = $1 AND resolved_at IS NULL", c) == 3);

  CHECK(Scalar<std::string>(conn, "SELECT courier.record_probe($1, true, 200, NULL, 3)", c) == "healthy");
  s = Row(conn, kState, c);
  CHECK(s[0].as<std::string>() == "healthy");
  CHECK(s[1].as<int>() == 0);
  CHECK(s[2].is_null());
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.failures WHERE source_id = $1 AND resolved_at IS NOT NULL "
              "AND resolution = 'probe passed'",
              c) == 3);
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox o JOIN courier.failures f ON f.id = o.subject_id "
              "WHERE o.event_type = 'IntegrationFailureResolved' AND f.source_id = $1",
              c) == 3);
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationConnectionRecovered' "
              "AND subject_id = $1 AND tenant_id = 'acme' AND body->>'health' = 'healthy'",
              c) == 1);

  // Still healthy: nothing more to announce.
  CHECK(Scalar<std::string>(conn, "SELECT courier.record_probe($1, true, 200, NULL, 3)", c) == "healthy");
  CHECK(Outbox(conn, "IntegrationConnectionRecovered", c) == 1);
  CHECK(degraded_events() == 2);
}

TEST_CASE("record_probe: one failure opens the circuit by default; a first pass is no recovery; unknown ids") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto fresh = AddConnection(conn, "acme");  // health unknown
  CHECK(Scalar<std::string>(conn, "SELECT courier.record_probe($1, true, 200, NULL)", fresh) == "healthy");
  CHECK(Outbox(conn, "IntegrationConnectionRecovered", fresh) == 0);
  CHECK(Outbox(conn, "IntegrationConnectionDegraded", fresh) == 0);

  const auto other = AddConnection(conn, "acme", "active", "healthy");
  CHECK(Scalar<std::string>(conn, "SELECT courier.record_probe($1, false, 500, 'HTTP 500')", other) == "unhealthy");
  CHECK(Outbox(conn, "IntegrationConnectionDegraded", other) == 1);

  CHECK(Row(conn, "SELECT courier.record_probe('conn_missing', false, 500, 'x')")[0].is_null());
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures WHERE source_id = 'conn_missing'") == 0);
}

TEST_CASE("degrade_connection degrades an active connection once, with its reason") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  CHECK(Scalar<bool>(conn, "SELECT courier.degrade_connection($1, 'HTTP 401: key revoked')", c));
  const auto r = Row(conn, "SELECT status, status_reason FROM courier.connections WHERE id = $1", c);
  CHECK(r[0].as<std::string>() == "degraded");
  CHECK(r[1].as<std::string>() == "HTTP 401: key revoked");
  CHECK(Count(conn,
              "SELECT count(*) FROM courier.outbox WHERE event_type = 'IntegrationConnectionDegraded' "
              "AND subject_id = $1 AND tenant_id = 'acme' AND body->>'reason' = 'HTTP 401: key revoked' "
              "AND body->>'status' = 'degraded'",
              c) == 1);

  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.degrade_connection($1, 'again')", c));
  CHECK(Scalar<std::string>(conn, "SELECT status_reason FROM courier.connections WHERE id = $1", c) ==
        "HTTP 401: key revoked");
  CHECK(Outbox(conn, "IntegrationConnectionDegraded", c) == 1);

  const auto retired = AddConnection(conn, "acme", "retired");
  const auto pending = AddConnection(conn, "acme", "pending");
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.degrade_connection($1, 'x')", retired));
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.degrade_connection($1, 'x')", pending));
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.degrade_connection('conn_missing', 'x')"));
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.connections WHERE id = $1", retired) == "retired");
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.connections WHERE id = $1", pending) == "pending");
}

// ============================================================================
// 7. release_runs
// ============================================================================

TEST_CASE("release_runs gives back only the lease owner's running runs, without an attempt") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto now_run = Enqueue(conn, "acme", c);
  const auto later_run = Enqueue(conn, "acme", c);
  const auto waiting_run = Enqueue(conn, "acme", c);
  const auto theirs = Enqueue(conn, "acme", c);
  const auto pending = Enqueue(conn, "acme", c);
  for (const auto& id : {now_run, later_run, waiting_run}) Claim(conn, id, "worker-1");
  Claim(conn, theirs, "worker-2");

  const auto released = Scalar<int>(
      conn,
      "SELECT courier.release_runs('worker-1', ARRAY[$1, $2, $3, $4, $5], ARRAY[0, 60000, -1, 0, 0]::bigint[], "
      "                            ARRAY['shutdown', 'rate limit', 'connection degraded', 'x', 'y'])",
      now_run, later_run, waiting_run, theirs, pending);
  CHECK(released == 3);

  const std::string kRun =
      "SELECT status, lease_owner IS NULL AND lease_expires_at IS NULL, attempts, last_error, "
      "       next_attempt_at <= now(), "
      "       next_attempt_at BETWEEN now() + interval '55 seconds' AND now() + interval '65 seconds' "
      "FROM courier.runs WHERE id = $1";
  auto r = Row(conn, kRun, now_run);
  CHECK(r[0].as<std::string>() == "pending");
  CHECK(r[1].as<bool>());
  CHECK(r[2].as<int>() == 0);
  CHECK(r[3].as<std::string>() == "shutdown");
  CHECK(r[4].as<bool>());
  r = Row(conn, kRun, later_run);
  CHECK(r[0].as<std::string>() == "pending");
  CHECK(r[3].as<std::string>() == "rate limit");
  CHECK(r[5].as<bool>());
  r = Row(conn, kRun, waiting_run);
  CHECK(r[0].as<std::string>() == "pending");
  CHECK(r[4].as<bool>());  // negative delay: due now (the claim skips the connection meanwhile)

  const auto t = Row(conn, "SELECT status, lease_owner, last_error IS NULL FROM courier.runs WHERE id = $1", theirs);
  CHECK(t[0].as<std::string>() == "running");
  CHECK(t[1].as<std::string>() == "worker-2");
  CHECK(t[2].as<bool>());
  CHECK(Scalar<bool>(conn, "SELECT last_error IS NULL FROM courier.runs WHERE id = $1", pending));
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.failures") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox") == 0);
}

// ============================================================================
// 8. run_queue_metrics
// ============================================================================

TEST_CASE("run_queue_metrics counts due, scheduled, waiting, running and dead-lettered runs and expiring credentials") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto ok = AddConnection(conn, "acme", "active", "healthy");
  const auto degraded = AddConnection(conn, "acme", "degraded", "healthy");
  const auto unhealthy = AddConnection(conn, "acme", "active", "unhealthy");
  const auto not_ready = AddConnection(conn, "acme", "pending", "unknown");
  AddConnection(conn, "acme", "retired", "unhealthy");  // not counted as unhealthy

  Enqueue(conn, "acme", ok);
  Enqueue(conn, "acme", ok);
  // A run whose connection was deleted after it was enqueued: poison, but due (the daemon dead-letters it).
  const auto gone = AddConnection(conn, "acme");
  Enqueue(conn, "acme", gone);
  Exec(conn, "DELETE FROM courier.connections WHERE id = $1", gone);
  const auto later = Enqueue(conn, "acme", ok);
  const auto later_degraded = Enqueue(conn, "acme", degraded);
  Exec(conn, "UPDATE courier.runs SET next_attempt_at = now() + interval '1 hour' WHERE id IN ($1, $2)", later,
       later_degraded);
  Enqueue(conn, "acme", degraded);
  Enqueue(conn, "acme", unhealthy);
  Enqueue(conn, "acme", not_ready);
  const auto r1 = Enqueue(conn, "acme", ok);
  const auto r2 = Enqueue(conn, "acme", degraded);
  Claim(conn, r1);
  Claim(conn, r2);
  const auto dead = Enqueue(conn, "acme", ok);
  Claim(conn, dead);
  Finish(conn, dead, "dead_lettered", 5);
  const auto done = Enqueue(conn, "acme", ok);
  Claim(conn, done);
  Finish(conn, done, "completed", 1);

  AddCredential(conn, "acme", "2 days");
  const auto far = AddCredential(conn, "acme", "30 days");
  AddCredential(conn, "acme");  // never expires
  // An inactive version about to expire does not count.
  Exec(conn,
       "INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, fingerprint, status, "
       "                                        expires_at) "
       "VALUES ($1, 2, 'v1:old', 'fp-old', 'inactive', now() + interval '1 hour')",
       far.id);

  const auto m = Row(conn,
                     "SELECT due, scheduled, waiting, running, dead_lettered, unhealthy_connections, "
                     "       degraded_connections, credentials_expiring, open_escalations "
                     "FROM courier.run_queue_metrics('7 days')");
  CHECK(m[0].as<long long>() == 3);  // two on `ok`, one on an unknown connection
  CHECK(m[1].as<long long>() == 2);
  CHECK(m[2].as<long long>() == 3);  // degraded, unhealthy, pending connection
  CHECK(m[3].as<long long>() == 2);
  CHECK(m[4].as<long long>() == 1);
  CHECK(m[5].as<long long>() == 1);
  CHECK(m[6].as<long long>() == 1);
  CHECK(m[7].as<long long>() == 1);
  CHECK(m[8].as<long long>() == 0);
  CHECK(Scalar<long long>(conn, "SELECT credentials_expiring FROM courier.run_queue_metrics('60 days')") == 2);
  CHECK(Scalar<long long>(conn, "SELECT credentials_expiring FROM courier.run_queue_metrics('1 day')") == 0);

  // The operator view says why a run waits.
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_status WHERE waiting_for IS NOT NULL") == 4);
  CHECK(Scalar<std::string>(conn, "SELECT waiting_for FROM courier.run_status WHERE connection_id = $1", unhealthy) ==
        "connection active/unhealthy");
}

TEST_CASE("run_queue_metrics on an empty queue is one row of zeros") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto m =
      Row(conn, "SELECT due, scheduled, waiting, running, dead_lettered FROM courier.run_queue_metrics('1 day')");
  for (int i = 0; i < 5; ++i) CHECK(m[i].as<long long>() == 0);
}

// ============================================================================
// 9. prune_runs
// ============================================================================

TEST_CASE("prune_runs deletes old finished runs with their attempts, keeps dead letters longer and trims the outbox") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto c = AddConnection(conn, "acme");
  const auto make = [&](const std::string& status, const std::string& age) {
    auto id = Enqueue(conn, "acme", c);
    Claim(conn, id);
    Finish(conn, id, status, 1, age);
    Exec(conn,
         "INSERT INTO courier.run_attempts (run_id, attempt, started_at, outcome, worker) "
         "VALUES ($1, 1, now() - $2::interval, 'x', 'worker-1')",
         id, age);
    return id;
  };
  const auto old_completed = make("completed", "10 days");
  const auto new_completed = make("completed", "1 hour");
  const auto old_failed = make("failed", "10 days");
  const auto dead_10 = make("dead_lettered", "10 days");
  const auto dead_40 = make("dead_lettered", "40 days");
  const auto old_pending = Enqueue(conn, "acme", c);
  Exec(conn, "UPDATE courier.runs SET created_at = now() - interval '50 days' WHERE id = $1", old_pending);
  Exec(conn,
       "INSERT INTO courier.outbox (event_type, tenant_id, subject_id, created_at) "
       "VALUES ('Old', 'acme', 'x1', now() - interval '10 days'), ('Old', 'acme', 'x2', now() - interval '9 days')");
  Exec(conn,
       "INSERT INTO courier.failures (tenant_id, source, source_id, category, error_code, next_action, "
       "                              created_at, resolved_at, resolution) "
       "VALUES ('acme', 'run', 'run_gone', 'transient', 'old_resolved', 'retry', now() - interval '12 days', "
       "        now() - interval '10 days', 'completed'), "
       "       ('acme', 'run', 'run_gone', 'transient', 'old_open', 'retry', now() - interval '12 days', NULL, NULL), "
       "       ('acme', 'run', 'run_gone', 'transient', 'new_resolved', 'retry', now() - interval '12 days', "
       "        now() - interval '1 hour', 'completed')");
  const auto recent_outbox =
      Count(conn, "SELECT count(*) FROM courier.outbox WHERE created_at > now() - interval '1 day'");
  REQUIRE(recent_outbox > 0);

  const std::string kPrune = "SELECT courier.prune_runs(now() - interval '7 days', now() - interval '30 days', $1)";
  // A batch of one takes the oldest first.
  CHECK(Scalar<int>(conn, kPrune, 1) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.runs WHERE id = $1", dead_40) == 0);
  // The outbox grows with every delivery, so a call trims up to ten batches of it.
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type = 'Old'") == 0);
  CHECK(Scalar<int>(conn, kPrune, 5000) == 2);
  CHECK(Scalar<int>(conn, kPrune, 5000) == 0);

  CHECK(Column(pgtest::Exec(conn, "SELECT id FROM courier.runs")) == Sorted({new_completed, dead_10, old_pending}));
  // Attempts go with their day's partition, once the longest window (30 days) has passed it:
  // the 40-day-old attempt is gone, the 10-day-old ones of pruned runs stay (invisible in the views).
  CHECK(Column(pgtest::Exec(conn, "SELECT run_id FROM courier.run_attempts")) ==
        Sorted({new_completed, dead_10, old_completed, old_failed}));
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_attempts WHERE run_id = $1", dead_40) == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_timeline WHERE run_id IN ($1, $2)", old_completed, old_failed) == 0);
  CHECK(Count(conn,
              "SELECT count(*) FROM pg_inherits WHERE inhparent = 'courier.run_attempts'::regclass "
              "AND inhrelid::regclass::text LIKE 'courier.run_attempts_p%'") >= 8);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type = 'Old'") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE created_at > now() - interval '1 day'") ==
        recent_outbox);
  // Resolved failures go after the completed window; open ones are kept, until the dead-letter window.
  CHECK(Column(pgtest::Exec(conn, "SELECT error_code FROM courier.failures WHERE source_id = 'run_gone'")) ==
        Sorted({"new_resolved", "old_open"}));
  Exec(conn, "UPDATE courier.failures SET created_at = now() - interval '31 days' WHERE error_code = 'old_open'");
  CHECK(Scalar<int>(conn, kPrune, 5000) == 0);
  CHECK(Column(pgtest::Exec(conn, "SELECT error_code FROM courier.failures WHERE source_id = 'run_gone'")) ==
        Sorted({"new_resolved"}));
}

// ============================================================================
// 10. Roles
// ============================================================================

TEST_CASE("a producer enqueues runs only for its tenants and reads nothing") {
  TestDb db;
  pqxx::connection admin(db.url());
  const auto c = AddConnection(admin, "acme");
  const auto cred = AddCredential(admin, "acme");
  const auto globex_run = Enqueue(admin, "globex", AddConnection(admin, "globex"), "shared-key");
  LoginRole producer(db, "courier_producer");
  Exec(admin, "INSERT INTO courier.producer_tenants VALUES ($1, 'acme')", producer.name());

  pqxx::connection conn(producer.url());
  const auto run = Scalar<std::string>(conn, "SELECT courier.enqueue_run('acme', $1, 'send_sms')", c);
  CHECK(run.rfind("run_", 0) == 0);
  CHECK(Count(admin, "SELECT count(*) FROM courier.runs WHERE id = $1 AND tenant_id = 'acme'", run) == 1);
  CHECK(ErrorOf(conn, "INSERT INTO courier.runs (tenant_id, connection_id, operation) VALUES ('acme', $1, 'op')", c)
            .empty());
  CHECK(Count(admin, "SELECT count(*) FROM courier.runs WHERE tenant_id = 'acme'") == 2);

  CHECK(Refused(conn, "SELECT courier.enqueue_run('globex', $1, 'send_sms')", c));
  CHECK(Refused(conn, "INSERT INTO courier.runs (tenant_id, connection_id, operation) VALUES ('globex', $1, 'op')", c));
  // Another tenant's idempotency key neither dedupes nor reveals that tenant's run id.
  CHECK(Refused(conn, "SELECT courier.enqueue_run('globex', $1, 'send_sms', idempotency_key => 'shared-key')", c));
  CHECK(Count(admin, "SELECT count(*) FROM courier.runs WHERE tenant_id = 'globex'") == 1);
  // A producer's INSERT cannot start a run anywhere but at the beginning: it may
  // only write the request's own columns (state, budget and lease keep their defaults).
  CHECK(Refused(conn,
                "INSERT INTO courier.runs (tenant_id, connection_id, operation, status, lease_owner, "
                "                          lease_expires_at) "
                "VALUES ('acme', $1, 'op', 'running', 'me', now() + interval '1 hour')",
                c));
  CHECK(Refused(conn, "INSERT INTO courier.runs (tenant_id, connection_id, operation, attempts) VALUES ('acme', $1, 'op', 3)",
                c));
  CHECK(Refused(conn,
                "INSERT INTO courier.runs (tenant_id, connection_id, operation, attempt_budget_base) "
                "VALUES ('acme', $1, 'op', 1000000)",
                c));
  CHECK(Refused(conn,
                "INSERT INTO courier.runs (tenant_id, connection_id, operation, last_error_code) "
                "VALUES ('acme', $1, 'op', 'auth_refresh')",
                c));

  CHECK(Refused(conn, "SELECT * FROM courier.runs"));
  CHECK(Refused(conn, "SELECT * FROM courier.credentials"));
  CHECK(Refused(conn, "SELECT * FROM courier.credential_versions"));
  CHECK(Refused(conn, "SELECT * FROM courier.outbox"));
  CHECK(Refused(conn, "SELECT * FROM courier.connections"));
  CHECK(Refused(conn, "UPDATE courier.runs SET status = 'completed'"));
  CHECK(Refused(conn, "SELECT courier.replay_run($1)", globex_run));
  CHECK(Refused(conn, "SELECT courier.finish_rotation($1, true, NULL, NULL)", cred.version_id));
  CHECK(Refused(conn, "SELECT courier.release_runs('w', ARRAY[$1], ARRAY[0]::bigint[], ARRAY['x'])", run));
  CHECK(Count(admin, "SELECT count(*) FROM courier.runs WHERE status <> 'pending'") == 0);
}

TEST_CASE("an operator reads the run views and replays, but cannot read credential versions or edit runs") {
  TestDb db;
  pqxx::connection admin(db.url());
  const auto cred = AddCredential(admin, "acme");
  const auto c = AddConnection(admin, "acme", "active", "unknown", cred.id);
  const auto run = Enqueue(admin, "acme", c);
  Claim(admin, run);
  CHECK(RecordOutcomes(admin, {Failure(run, 1, "dead_lettered", "validation", "dead_letter")}).size() == 1);
  const auto retrying = Enqueue(admin, "acme", c);
  Claim(admin, retrying);
  CHECK(RecordOutcomes(admin, {Failure(retrying, 1, "pending", "transient")}).size() == 1);
  LoginRole operator_role(db, "courier_operator");

  pqxx::connection conn(operator_role.url());
  CHECK(Scalar<std::string>(conn, "SELECT status FROM courier.run_status WHERE id = $1", run) == "dead_lettered");
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_timeline WHERE run_id = $1", run) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_dead_letters WHERE run_id = $1", run) == 1);
  CHECK(Scalar<int>(conn, "SELECT credential_version FROM courier.connection_health WHERE id = $1", c) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.open_failures WHERE source_id = $1 AND category = 'transient'",
              retrying) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE subject_id = $1", run) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.credential_expiry") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.escalations") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_queue_metrics('1 day')") == 1);

  CHECK(Scalar<bool>(conn, "SELECT courier.replay_run($1)", run));
  CHECK(RunStatus(admin, run) == "pending");

  CHECK(Refused(conn, "SELECT * FROM courier.credential_versions"));
  CHECK(Refused(conn, "SELECT * FROM courier.credentials"));
  CHECK(Refused(conn, "SELECT * FROM courier.runs"));
  CHECK(Refused(conn, "UPDATE courier.runs SET status = 'failed'"));
  CHECK(Refused(conn, "SELECT courier.finish_rotation('crv_x', true, NULL, NULL)"));
  CHECK(Refused(conn, "SELECT courier.enqueue_run('acme', $1, 'op')", c));
}

TEST_CASE("the daemon role claims, records, releases, probes and rotates through the granted rights only") {
  TestDb db;
  pqxx::connection admin(db.url());
  const auto cred = AddCredential(admin, "acme");
  const auto c = AddConnection(admin, "acme", "active", "healthy", cred.id);
  const auto a = Enqueue(admin, "acme", c);
  const auto b = Enqueue(admin, "acme", c);
  const auto v2 = StartRotation(admin, cred.id);
  LoginRole daemon(db, "courier_daemon");

  pqxx::connection conn(daemon.url());
  CHECK(Count(conn, "SELECT count(*) FROM courier.runs WHERE status = 'pending'") == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.credential_versions WHERE credential_id = $1", cred.id) == 2);
  CHECK(ErrorOf(conn,
                "UPDATE courier.runs SET status = 'running', lease_owner = 'd1', "
                "       lease_expires_at = now() + interval '30 seconds', started_at = now(), updated_at = now() "
                "WHERE id IN ($1, $2)",
                a, b)
            .empty());
  CHECK(RecordOutcomes(conn, {Success(a, 1, "SMa")}, "d1") ==
        std::vector<std::string>{});  // owner defaults to worker-1
  auto mine = Success(a, 1, "SMa");
  mine.owner = "d1";
  CHECK(RecordOutcomes(conn, {mine}, "d1") == std::vector<std::string>{a});
  CHECK(Scalar<int>(conn, "SELECT courier.release_runs('d1', ARRAY[$1], ARRAY[0]::bigint[], ARRAY['shutdown'])", b) ==
        1);
  CHECK(Scalar<std::string>(conn, "SELECT courier.record_probe($1, true, 200, NULL, 1)", c) == "healthy");
  CHECK(Scalar<bool>(conn, "SELECT courier.finish_rotation($1, true, $2, NULL)", v2, c));
  CHECK(Scalar<bool>(conn, "SELECT courier.degrade_connection($1, 'test')", c));
  CHECK(Count(conn, "SELECT count(*) FROM courier.run_queue_metrics('1 day')") == 1);
  CHECK(Scalar<int>(conn, "SELECT courier.prune_runs(now() - interval '1 day', now() - interval '1 day')") == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox") > 0);

  // Only the claim's columns are writable directly, and (002_clock_shift) the due time, which the leader
  // moves back after a backward step of the database clock: as this role, and only the old clock's.
  CHECK(Refused(conn, "UPDATE courier.runs SET attempts = 5 WHERE id = $1", b));
  Exec(admin, "UPDATE courier.runs SET next_attempt_at = now() + interval '1 hour', "
              "updated_at = now() + interval '1 hour' WHERE id = $1", b);
  pgtest::DaemonSession leader(daemon.url());
  const pgcourier::store::ScheduleShift shift{std::chrono::hours(1), 6s, "", 100};
  const auto shifted = leader.runs->ShiftSchedules(shift);
  CHECK(shifted.visited == 2);
  CHECK(shifted.due_times == 1);
  CHECK(Scalar<bool>(conn, "SELECT next_attempt_at <= now() + interval '1 second' FROM courier.runs WHERE id = $1", b));
  CHECK(leader.runs->ShiftSchedules(shift).due_times == 0);
  CHECK(Refused(conn, "DELETE FROM courier.runs WHERE id = $1", b));
  CHECK(Refused(conn,
                "INSERT INTO courier.run_attempts (run_id, attempt, started_at, outcome, worker) "
                "VALUES ($1, 9, now(), 'x', 'd1')",
                b));
}

TEST_CASE("the daemon cannot move a dead-lettered run back to pending without courier.replay_run") {
  // The transition guard trusts the custom setting courier.replaying_run,
  // which any session may set: it must not let a plain UPDATE through.
  TestDb db;
  pqxx::connection admin(db.url());
  const auto run = Enqueue(admin, "acme", AddConnection(admin, "acme"));
  Claim(admin, run);
  Finish(admin, run, "dead_lettered", 4);
  LoginRole daemon(db, "courier_daemon");

  pqxx::connection conn(daemon.url());
  CHECK(Contains(ErrorOf(conn, "UPDATE courier.runs SET status = 'pending' WHERE id = $1", run),
                 "status cannot go from dead_lettered to pending"));
  bool refused = false;
  try {
    pqxx::work txn(conn);
    txn.exec_params("SELECT set_config('courier.replaying_run', $1, true)", run);
    txn.exec_params("UPDATE courier.runs SET status = 'pending' WHERE id = $1", run);
    txn.commit();
  } catch (const pqxx::sql_error& e) {
    refused = true;
    MESSAGE("refused: " << e.what());
  }
  CHECK(refused);
  CHECK(RunStatus(admin, run) == "dead_lettered");
}

TEST_SUITE_END();

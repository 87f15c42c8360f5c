// Named SQL statements for integration runs (see sql/schema/40_integrations.sql
// for the functions they call). Prepared on every daemon connection.
#include <string>

#include "store/statements.hpp"

namespace pgcourier::store {
namespace {

// The 19 connection columns every run statement reads (connection c, its
// credential version v), in the order ReadConnection expects. NULL-safe for
// a run whose connection does not exist.
const std::string kConnectionColumns = R"SQL(
  coalesce(c.id, ''), coalesce(c.tenant_id, ''), coalesce(c.status, ''), coalesce(c.base_url, ''),
  coalesce(c.auth_mode, ''), coalesce(c.api_key_header, ''), coalesce(c.token_url, ''), coalesce(c.client_id, ''),
  coalesce(c.scopes, ''), coalesce(c.policy, ''), coalesce(c.max_in_flight, 0), coalesce(c.rate_limit_per_second, 0),
  coalesce(c.rate_limit_burst, 0), coalesce(c.credential_id, ''), coalesce(v.version, 0), coalesce(v.sealed_secret, ''),
  CASE WHEN c.health_check_path IS NULL THEN '' ELSE c.health_check_method END, coalesce(c.health_check_path, ''),
  coalesce(c.health_check_expected_status, 0))SQL";

// $1 worker, $2 limit, $3 lease (ms), $4 tenants served (empty: all), $5
// policies whose runs may execute while the connection's health is degraded.
// Claimed: runs whose connection can run them now, and runs that cannot ever
// run (unknown, retired or foreign connection) so they are dead-lettered as
// poison. Runs of a pending, degraded or unhealthy connection stay waiting.
const std::string kClaimRunsSql = R"SQL(
WITH due AS (
  SELECT r.id FROM courier.runs r
  LEFT JOIN courier.connections c ON c.id = r.connection_id
  WHERE r.status = 'pending' AND r.next_attempt_at <= now()
    AND (cardinality($4::text[]) = 0 OR r.tenant_id = ANY ($4::text[]))
    AND (c.id IS NULL OR c.status = 'retired' OR c.tenant_id <> r.tenant_id
         OR (c.status = 'active' AND (c.health IN ('healthy', 'unknown')
                                      OR (c.health = 'degraded' AND c.policy = ANY ($5::text[])))))
  ORDER BY r.next_attempt_at
  LIMIT $2
  FOR UPDATE OF r SKIP LOCKED
), claimed AS (
  UPDATE courier.runs r
  SET status = 'running', lease_owner = $1, lease_expires_at = now() + $3::bigint * interval '1 millisecond',
      started_at = coalesce(r.started_at, now()), updated_at = now()
  FROM due WHERE r.id = due.id
  RETURNING r.*
)
SELECT cl.id, cl.tenant_id, cl.connection_id, cl.operation, cl.method, cl.path, cl.headers::text,
       cl.body, coalesce(cl.idempotency_key, ''), coalesce(cl.external_ref_pointer, ''), coalesce(cl.trace_id, ''),
       coalesce(cl.last_error_code, ''), cl.attempts, cl.rate_limited_attempts, cl.attempt_budget_base,
       c.id IS NOT NULL,)SQL" + kConnectionColumns + R"SQL(
FROM claimed cl
LEFT JOIN courier.connections c ON c.id = cl.connection_id
LEFT JOIN courier.credential_versions v ON v.credential_id = c.credential_id AND v.status = 'active'
)SQL";

// $1 worker and one array per column (see courier.record_run_outcomes).
const std::string kRecordRunOutcomesSql =
    "SELECT * FROM courier.record_run_outcomes($1, $2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], "
    "$7::int[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::text[], $13::text[], $14::bigint[], "
    "$15::float8[], $16::text[], $17::text[], $18::int[])";

// $1 limit.
const std::string kFindExpiredRunLeasesSql = R"SQL(
SELECT r.id, r.lease_owner, coalesce(c.policy, 'default'), r.attempts, r.attempt_budget_base, r.rate_limited_attempts
FROM courier.runs r
LEFT JOIN courier.connections c ON c.id = r.connection_id
WHERE r.status = 'running' AND r.lease_expires_at < now()
ORDER BY r.lease_expires_at
LIMIT $1
FOR UPDATE OF r SKIP LOCKED
)SQL";

const std::string kReleaseRunsSql = "SELECT courier.release_runs($1, $2::text[], $3::bigint[], $4::text[])";
const std::string kDegradeConnectionSql = "SELECT courier.degrade_connection($1, $2, $3::int)";

// Connections with a health check that are in use (active or degraded).
const std::string kConnectionsToProbeSql = R"SQL(
SELECT)SQL" + kConnectionColumns + R"SQL(,
       coalesce((extract(epoch FROM now() - c.last_checked_at) * 1000)::bigint, -1)
FROM courier.connections c
LEFT JOIN courier.credential_versions v ON v.credential_id = c.credential_id AND v.status = 'active'
WHERE c.status IN ('active', 'degraded') AND c.health_check_path IS NOT NULL
ORDER BY c.last_checked_at NULLS FIRST
LIMIT 1000
)SQL";

// $1 connection, $2 ok, $3 status code (NULL: no response), $4 error, $5 unhealthy_after.
const std::string kRecordProbeSql = "SELECT courier.record_probe($1, $2, $3::int, $4, $5)";

// Credential versions waiting for verification, each with one connection
// using the credential (one with a health check first), read with the
// candidate version's secret.
const std::string kPendingRotationsSql = R"SQL(
SELECT v.id, v.version, v.credential_id, cr.tenant_id, c.id IS NOT NULL,)SQL" + kConnectionColumns + R"SQL(
FROM courier.credential_versions v
JOIN courier.credentials cr ON cr.id = v.credential_id
LEFT JOIN LATERAL (
  SELECT * FROM courier.connections x
  WHERE x.credential_id = v.credential_id AND x.status <> 'retired'
  ORDER BY (x.health_check_path IS NULL), x.created_at
  LIMIT 1) c ON true
WHERE v.status = 'rotating'
ORDER BY v.created_at
LIMIT 100
)SQL";

const std::string kFinishRotationSql = "SELECT courier.finish_rotation($1, $2, nullif($3, ''), $4)";
const std::string kRunQueueMetricsSql =
    "SELECT * FROM courier.run_queue_metrics($1::bigint * interval '1 millisecond')";
const std::string kPruneRunsSql =
    "SELECT courier.prune_runs(now() - $1::bigint * interval '1 millisecond', "
    "now() - $2::bigint * interval '1 millisecond', $3)";

}  // namespace

const std::vector<std::pair<const char*, const char*>>& RunStatements() {
  static const std::vector<std::pair<const char*, const char*>> kStatements = {
      {kStmtClaimRuns, kClaimRunsSql.c_str()},
      {kStmtRecordRunOutcomes, kRecordRunOutcomesSql.c_str()},
      {kStmtFindExpiredRunLeases, kFindExpiredRunLeasesSql.c_str()},
      {kStmtReleaseRuns, kReleaseRunsSql.c_str()},
      {kStmtDegradeConnection, kDegradeConnectionSql.c_str()},
      {kStmtConnectionsToProbe, kConnectionsToProbeSql.c_str()},
      {kStmtRecordProbe, kRecordProbeSql.c_str()},
      {kStmtPendingRotations, kPendingRotationsSql.c_str()},
      {kStmtFinishRotation, kFinishRotationSql.c_str()},
      {kStmtRunQueueMetrics, kRunQueueMetricsSql.c_str()},
      {kStmtPruneRuns, kPruneRunsSql.c_str()},
  };
  return kStatements;
}

}  // namespace pgcourier::store

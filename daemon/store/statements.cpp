#include "store/statements.hpp"

namespace pgcourier::store {
namespace {

// $1 worker, $2 limit, $3 lease in milliseconds, $4 tenants served (empty: all).
// The inner SELECT matches the partial index deliveries_due exactly; SKIP
// LOCKED lets several daemons claim side by side without waiting.
constexpr const char* kClaimDueSql = R"SQL(
WITH due AS (
  SELECT d.id FROM courier.deliveries d
  WHERE d.status IN ('pending', 'retry_scheduled') AND d.next_attempt_at <= now()
    -- a daemon dedicated to some tenants ($4 = their ids; empty = every tenant)
    AND (cardinality($4::text[]) = 0 OR d.tenant_id = ANY ($4::text[]))
    -- FIFO subscriptions: nothing overtakes an unfinished earlier delivery with the same key.
    AND (d.ordering_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM courier.deliveries p
          WHERE p.subscription_id = d.subscription_id AND p.ordering_key = d.ordering_key
            AND p.status IN ('pending', 'delivering', 'retry_scheduled')
            AND (p.created_at, p.id) < (d.created_at, d.id)))
  ORDER BY d.next_attempt_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE courier.deliveries d
  SET status = 'delivering', lease_owner = $1,
      lease_expires_at = now() + $3::bigint * interval '1 millisecond', updated_at = now()
  FROM due WHERE d.id = due.id
  RETURNING d.id, d.tenant_id, d.event_id, d.subscription_id, d.attempts, d.attempt_budget_base, d.ordering_key
)
SELECT c.id, c.tenant_id, c.event_id, c.subscription_id, c.attempts,
       e.event_type, e.payload::text, coalesce(e.trace_id, ''),
       to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       (extract(epoch FROM e.created_at) * 1000000)::bigint,
       s.url, s.policy, s.active,
       coalesce((SELECT string_agg(ss.sealed_secret, ' ' ORDER BY ss.created_at DESC)
                 FROM courier.subscription_secrets ss
                 WHERE ss.subscription_id = s.id AND ss.revoked_at IS NULL
                   AND (ss.expires_at IS NULL OR ss.expires_at > now())), ''),
       s.paused_at IS NOT NULL, c.attempt_budget_base, coalesce(c.ordering_key, ''),
       coalesce(s.max_in_flight, 0), coalesce(s.rate_limit_per_second, 0), coalesce(s.rate_limit_burst, 0),
       s.tenant_id = c.tenant_id AND e.tenant_id = c.tenant_id
FROM claimed c
JOIN courier.events e ON e.id = c.event_id
JOIN courier.subscriptions s ON s.id = c.subscription_id
)SQL";

// $1 worker writing the attempts, then one array per column, then $15 the
// delivery_events setting. A row applies
// only while its expected owner still holds the lease at that attempt number,
// so a late result from a daemon whose lease was taken over changes nothing.
constexpr const char* kRecordOutcomesSql = R"SQL(
WITH input AS (
  SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::int[], $8::text[],
                       $9::text[], $10::bool[], $11::text[], $12::text[], $13::bigint[], $14::float8[])
    AS t(id, attempt, owner, status, delay_ms, status_code, outcome, error_class, retryable,
         error_summary, excerpt, started_us, duration_ms)
), updated AS (
  UPDATE courier.deliveries d
  SET status = i.status,
      attempts = i.attempt,
      next_attempt_at = CASE
        WHEN i.delay_ms IS NULL THEN d.next_attempt_at
        -- a retry of a paused subscription is held until it is resumed
        WHEN EXISTS (SELECT 1 FROM courier.subscriptions s
                     WHERE s.id = d.subscription_id AND s.paused_at IS NOT NULL) THEN 'infinity'
        ELSE now() + i.delay_ms * interval '1 millisecond' END,
      lease_owner = NULL, lease_expires_at = NULL,
      last_status_code = i.status_code,
      last_error = i.error_summary,
      updated_at = now(),
      completed_at = CASE WHEN i.status IN ('delivered', 'failed', 'dead_lettered') THEN now() END
  FROM input i
  WHERE d.id = i.id AND d.status = 'delivering' AND d.lease_owner = i.owner AND d.attempts = i.attempt - 1
  -- The input's columns ride along, so no later step joins two CTE scans
  -- (a nested loop over both: quadratic in the batch size).
  RETURNING d.id, d.subscription_id, d.tenant_id, d.event_id, d.status, d.attempts, d.last_status_code,
            i.outcome, i.error_class, i.retryable, i.error_summary, i.excerpt, i.started_us, i.duration_ms
), finished AS (
  -- $15: which delivery outcomes reach the outbox and the failures table (all, failures, none).
  SELECT u.*, e.trace_id
  FROM updated u JOIN courier.events e ON e.id = u.event_id
  WHERE u.status IN ('delivered', 'failed', 'dead_lettered')
    AND ($15 = 'all' OR ($15 = 'failures' AND u.status <> 'delivered'))
), emitted AS (
  INSERT INTO courier.outbox (event_type, tenant_id, subject_id, trace_id, body)
  SELECT CASE f.status WHEN 'delivered' THEN 'WebhookDelivered' WHEN 'failed' THEN 'WebhookFailed'
                       ELSE 'WebhookDeadLettered' END,
         f.tenant_id, f.id, f.trace_id,
         jsonb_build_object('delivery_id', f.id, 'event_id', f.event_id, 'subscription_id', f.subscription_id,
                            'status', f.status, 'attempts', f.attempts, 'status_code', f.last_status_code,
                            'error', f.error_summary)
  FROM finished f
), failures_recorded AS (
  INSERT INTO courier.failures (tenant_id, source, source_id, category, error_code, message, attempt, next_action,
                                trace_id)
  SELECT f.tenant_id, 'delivery', f.id,
         CASE WHEN f.error_class IN ('transient', 'rate_limited', 'auth', 'validation', 'poison') THEN f.error_class
              WHEN f.error_class IS NULL THEN 'transient' ELSE 'validation' END,
         CASE WHEN f.last_status_code IS NOT NULL THEN 'http_' || f.last_status_code ELSE f.outcome END,
         f.error_summary, f.attempts, CASE f.status WHEN 'dead_lettered' THEN 'dead_letter' ELSE 'fail' END,
         f.trace_id
  FROM finished f WHERE f.status <> 'delivered'
), inserted AS (
  INSERT INTO courier.delivery_attempts
    (delivery_id, attempt, started_at, duration_ms, status_code, outcome, error_class, retryable,
     error_summary, response_excerpt, worker)
  SELECT u.id, u.attempts, to_timestamp(u.started_us / 1000000.0), u.duration_ms, u.last_status_code, u.outcome,
         u.error_class, u.retryable, u.error_summary, u.excerpt, $1
  FROM updated u
  RETURNING delivery_id
), counted AS (
  -- Attempts that say something about the endpoint (not our own lease or config trouble).
  SELECT u.subscription_id AS sub, u.outcome = 'delivered' AS ok, u.started_us, u.error_summary
  FROM updated u
  WHERE u.outcome NOT IN ('lease_expired', 'record_error', 'subscription_inactive', 'invalid_url',
                          'blocked_destination', 'aborted', 'tenant_mismatch', 'payload_too_large')
), last_ok AS (
  SELECT sub, max(started_us) FILTER (WHERE ok) AS ok_us FROM counted GROUP BY sub
), stats AS (
  SELECT c.sub, l.ok_us,
         count(*) FILTER (WHERE NOT c.ok AND (l.ok_us IS NULL OR c.started_us > l.ok_us)) AS fails,
         (array_agg(c.error_summary ORDER BY c.started_us DESC) FILTER (WHERE NOT c.ok))[1] AS last_error
  FROM counted c JOIN last_ok l USING (sub)
  GROUP BY c.sub, l.ok_us
), health AS (
  UPDATE courier.subscriptions s
  SET consecutive_failures = CASE WHEN st.ok_us IS NULL THEN s.consecutive_failures + st.fails ELSE st.fails END,
      last_success_at = CASE WHEN st.ok_us IS NULL THEN s.last_success_at ELSE now() END,
      failing_since = CASE WHEN st.fails = 0 THEN NULL
                           WHEN st.ok_us IS NULL THEN coalesce(s.failing_since, now())
                           ELSE now() END,
      last_failure_at = CASE WHEN st.fails > 0 THEN now() ELSE s.last_failure_at END,
      last_error = CASE WHEN st.fails > 0 THEN st.last_error ELSE s.last_error END
  FROM stats st
  WHERE s.id = st.sub
    -- a healthy, busy subscription is not rewritten on every batch
    AND NOT (st.fails = 0 AND s.consecutive_failures = 0 AND s.failing_since IS NULL
             AND coalesce(s.last_success_at > now() - interval '1 second', false))
  RETURNING s.id, s.consecutive_failures,
            coalesce(extract(epoch FROM now() - s.failing_since) * 1000, 0)::bigint AS failing_ms
)
SELECT 'd' AS kind, delivery_id AS id, 0 AS consecutive_failures, 0::bigint AS failing_ms FROM inserted
UNION ALL
SELECT 's', id, consecutive_failures, failing_ms FROM health
)SQL";

// $1 worker, $2 delivery id, $3 attempt, $4 reason: the last resort when a
// row's outcome breaks a constraint. The delivery ends failed with the reason.
constexpr const char* kQuarantineSql = R"SQL(
WITH updated AS (
  UPDATE courier.deliveries d
  SET status = 'failed', attempts = $3, lease_owner = NULL, lease_expires_at = NULL,
      last_error = $4, updated_at = now(), completed_at = now()
  WHERE d.id = $2 AND d.status = 'delivering' AND d.lease_owner = $1 AND d.attempts = $3 - 1
  RETURNING d.id
)
INSERT INTO courier.delivery_attempts
  (delivery_id, attempt, started_at, outcome, error_class, retryable, error_summary, worker)
SELECT id, $3, now(), 'record_error', 'poison', false, $4, $1 FROM updated
ON CONFLICT DO NOTHING
RETURNING delivery_id
)SQL";

// $1 limit.
constexpr const char* kFindExpiredLeasesSql = R"SQL(
SELECT d.id, d.lease_owner, s.policy, d.attempts, d.attempt_budget_base, d.subscription_id
FROM courier.deliveries d
JOIN courier.subscriptions s ON s.id = d.subscription_id
WHERE d.status = 'delivering' AND d.lease_expires_at < now()
ORDER BY d.lease_expires_at
LIMIT $1
FOR UPDATE OF d SKIP LOCKED
)SQL";

// $1 worker, $2 ids, $3 delays (ms; negative: until resumed), $4 reasons. No attempt is recorded.
constexpr const char* kReleaseLeasesSql = R"SQL(
UPDATE courier.deliveries d
SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retry_scheduled' END,
    lease_owner = NULL, lease_expires_at = NULL,
    next_attempt_at = CASE
      -- held until the subscription is resumed, unless it was resumed meanwhile
      WHEN i.delay_ms < 0 AND EXISTS (SELECT 1 FROM courier.subscriptions s
                                      WHERE s.id = d.subscription_id AND s.paused_at IS NOT NULL) THEN 'infinity'
      WHEN i.delay_ms < 0 THEN now()
      ELSE now() + i.delay_ms * interval '1 millisecond' END,
    last_error = i.reason, updated_at = now()
FROM unnest($2::text[], $3::bigint[], $4::text[]) AS i(id, delay_ms, reason)
WHERE d.id = i.id AND d.status = 'delivering' AND d.lease_owner = $1
)SQL";

// Makes held deliveries due now (after a policy reload or a restart fixed
// what held them). Only rows still waiting and marked held are touched.
constexpr const char* kWakeHeldSql = R"SQL(
UPDATE courier.deliveries
SET next_attempt_at = now(), updated_at = now()
WHERE status IN ('pending', 'retry_scheduled') AND next_attempt_at > now() AND starts_with(last_error, 'held: ')
)SQL";

// $1 subscription id, $2 reason.
constexpr const char* kPauseSubscriptionSql = "SELECT courier.pause_subscription($1, $2)";
constexpr const char* kDisableSubscriptionSql = "SELECT courier.disable_subscription($1, $2)";

// Maintenance runs in one daemon at a time: the holder of this session lock.
// It is released when the holder's connection closes (the daemon died).
constexpr const char* kTryLeadershipSql = "SELECT pg_try_advisory_lock(hashtext('pgcourier.maintenance'))";
constexpr const char* kQueueMetricsSql = "SELECT * FROM courier.queue_metrics()";
// $1 completed retention (ms), $2 dead-letter retention (ms), $3 batch size.
constexpr const char* kPruneSql =
    "SELECT courier.prune(now() - $1::bigint * interval '1 millisecond', "
    "now() - $2::bigint * interval '1 millisecond', $3)";

}  // namespace

const std::vector<std::pair<const char*, const char*>>& DaemonStatements() {
  static const std::vector<std::pair<const char*, const char*>> kStatements = {
      {kStmtClaimDue, kClaimDueSql},
      {kStmtRecordOutcomes, kRecordOutcomesSql},
      {kStmtQuarantine, kQuarantineSql},
      {kStmtFindExpiredLeases, kFindExpiredLeasesSql},
      {kStmtReleaseLeases, kReleaseLeasesSql},
      {kStmtWakeHeld, kWakeHeldSql},
      {kStmtPauseSubscription, kPauseSubscriptionSql},
      {kStmtDisableSubscription, kDisableSubscriptionSql},
      {kStmtTryLeadership, kTryLeadershipSql},
      {kStmtQueueMetrics, kQueueMetricsSql},
      {kStmtPrune, kPruneSql},
  };
  return kStatements;
}

}  // namespace pgcourier::store

-- record_outcomes: one batch of attempt results of worker $1, one array per
-- column ($2..$14), $15 the delivery_events setting (all, failures, none),
-- $16 per row: true when the row is a rescue (the lease must have expired:
-- an owner that renewed it in the meantime keeps it). Runs after
-- begin_outcomes, in one transaction.
--
-- The fence: a row applies only while its queue row is still leased by the
-- expected owner at the attempt before this one, so a late result from a
-- daemon whose lease was taken over changes nothing. The queue row is written
-- by the statement that checks the fence (deleted when the delivery is
-- finished, released with its next due time otherwise): a concurrent writer
-- of the same row makes PostgreSQL re-check the fence on its new version, and
-- the delivery is then updated only for the queue rows actually written.
-- Returns one 'd' row per applied delivery and one 's' row per subscription
-- whose failure counters changed (the engine checks auto-pause with them).
WITH input AS (
  SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::int[], $8::text[],
                       $9::text[], $10::bool[], $11::text[], $12::text[], $13::bigint[], $14::float8[], $16::bool[])
    AS t(id, attempt, owner, status, delay_ms, status_code, outcome, error_class, retryable,
         error_summary, excerpt, started_us, duration_ms, rescue)
), finished_queue AS (
  DELETE FROM courier.delivery_queue q
  USING input i
  WHERE q.delivery_id = i.id AND i.status IN ('delivered', 'failed', 'dead_lettered')
    AND q.lease_owner = i.owner AND q.attempts = i.attempt - 1 AND (NOT i.rescue OR q.lease_expires_at < now())
  -- The input's columns ride along, so no later step joins two CTE scans
  -- (a nested loop over both: quadratic in the batch size).
  RETURNING i.*, NULL::timestamptz AS due_at
), retried_queue AS (
  UPDATE courier.delivery_queue q
  SET lease_owner = NULL, lease_expires_at = NULL, attempts = i.attempt, retry = true,
      due_at = CASE
        WHEN i.delay_ms IS NULL THEN q.due_at
        -- a retry of a paused subscription is held until it is resumed
        WHEN EXISTS (SELECT 1 FROM courier.subscriptions s
                     WHERE s.id = q.subscription_id AND s.paused_at IS NOT NULL) THEN 'infinity'
        ELSE now() + i.delay_ms * interval '1 millisecond' END
  FROM input i
  WHERE q.delivery_id = i.id AND i.status NOT IN ('delivered', 'failed', 'dead_lettered')
    AND q.lease_owner = i.owner AND q.attempts = i.attempt - 1 AND (NOT i.rescue OR q.lease_expires_at < now())
  RETURNING i.*, q.due_at
), written AS (
  SELECT * FROM finished_queue UNION ALL SELECT * FROM retried_queue
), updated AS (
  UPDATE courier.deliveries d
  SET status = w.status,
      attempts = w.attempt,
      next_attempt_at = coalesce(w.due_at, d.next_attempt_at),
      last_status_code = w.status_code,
      last_error = w.error_summary,
      updated_at = now(),
      completed_at = CASE WHEN w.status IN ('delivered', 'failed', 'dead_lettered') THEN now() END
  FROM written w
  WHERE d.id = w.id
  RETURNING d.id, d.subscription_id, d.tenant_id, d.event_id, d.status, d.attempts, d.last_status_code,
            w.outcome, w.error_class, w.retryable, w.error_summary, w.excerpt, w.started_us, w.duration_ms
), dead_lettered AS (
  INSERT INTO courier.delivery_dead_letters (delivery_id, tenant_id, subscription_id, dead_lettered_at)
  SELECT u.id, u.tenant_id, u.subscription_id, now() FROM updated u WHERE u.status = 'dead_lettered'
  ON CONFLICT (delivery_id) DO NOTHING
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
                          'blocked_destination', 'aborted', 'tenant_mismatch', 'payload_too_large',
                          'invalid_request')
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

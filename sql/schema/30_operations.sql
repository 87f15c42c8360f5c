-- 30_operations: what the people who run pgcourier look at and what keeps
-- the tables small: status views, queue depth and lag, the metrics row, and
-- retention (courier.prune()). The per-table autovacuum settings of the queue
-- tables are part of their definitions (courier.deliveries in 10_core.sql,
-- courier.runs in 40_integrations.sql), and so are the partial indexes these
-- views and prune() read. 90_roles.sql grants the views to courier_operator.

-- Operator views. URLs are shown through courier.redact_url: an operator
-- (or a dashboard) never sees a receiver's token in a query string.
CREATE VIEW courier.delivery_status AS
SELECT d.id, d.tenant_id, d.event_id, e.event_type, d.subscription_id, courier.redact_url(s.url) AS url, d.status,
       d.attempts,
       d.next_attempt_at, d.lease_owner, d.lease_expires_at, d.last_status_code, d.last_error,
       d.created_at, d.updated_at, d.completed_at
FROM courier.deliveries d
JOIN courier.events e ON e.id = d.event_id
JOIN courier.subscriptions s ON s.id = d.subscription_id;

CREATE VIEW courier.dead_letters AS
SELECT d.id AS delivery_id, d.tenant_id, d.subscription_id, courier.redact_url(s.url) AS url, d.attempts,
       d.last_status_code,
       d.last_error, d.completed_at AS dead_lettered_at,
       e.id AS event_id, e.event_type, e.payload, e.idempotency_key, e.trace_id, e.created_at AS event_created_at
FROM courier.deliveries d
JOIN courier.events e ON e.id = d.event_id
JOIN courier.subscriptions s ON s.id = d.subscription_id
WHERE d.status = 'dead_lettered';

CREATE VIEW courier.queue_summary AS
SELECT status, count(*) AS deliveries,
       count(*) FILTER (WHERE status IN ('pending', 'retry_scheduled') AND next_attempt_at <= now()) AS due_now,
       min(next_attempt_at) FILTER (WHERE status IN ('pending', 'retry_scheduled')) AS oldest_due_at
FROM courier.deliveries
GROUP BY status;

-- A delivery's timeline, one row per attempt (dashboards, pgcourierctl inspect).
CREATE VIEW courier.delivery_timeline AS
SELECT a.delivery_id, d.tenant_id, d.subscription_id, d.event_id, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.outcome, a.error_class, a.retryable, a.error_summary, a.worker
FROM courier.delivery_attempts a
JOIN courier.deliveries d ON d.id = a.delivery_id;

-- Queue depth of unfinished work by tenant, subscription and state. Reads
-- only the rows of the partial indexes (unfinished deliveries), never the
-- finished history.
CREATE VIEW courier.queue_depth AS
SELECT d.tenant_id, d.subscription_id,
       CASE WHEN d.status = 'delivering' THEN 'delivering'
            WHEN d.next_attempt_at = 'infinity' THEN 'held'
            WHEN d.next_attempt_at <= now() THEN 'due'
            ELSE 'scheduled' END AS state,
       count(*) AS deliveries,
       min(d.created_at) AS oldest_created_at,
       min(d.next_attempt_at) FILTER (WHERE d.status <> 'delivering') AS earliest_next_attempt_at
FROM courier.deliveries d
WHERE d.status IN ('pending', 'retry_scheduled', 'delivering')
GROUP BY 1, 2, 3;

-- How late the queue is: the oldest due delivery and how long it has waited.
CREATE VIEW courier.queue_lag AS
SELECT count(*) AS due_now,
       min(next_attempt_at) AS oldest_due_at,
       coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)::double precision AS lag_seconds
FROM courier.deliveries
WHERE status IN ('pending', 'retry_scheduled') AND next_attempt_at <= now();

-- One cheap row for metrics: queue depth by state, paused subscriptions, dead letters.
CREATE FUNCTION courier.queue_metrics(OUT due bigint, OUT scheduled bigint, OUT held bigint, OUT delivering bigint,
                                      OUT dead_lettered bigint, OUT paused_subscriptions bigint,
                                      OUT oldest_due_seconds double precision)
LANGUAGE sql STABLE SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT count(*) FILTER (WHERE status <> 'delivering' AND next_attempt_at <= now()),
         count(*) FILTER (WHERE status <> 'delivering' AND next_attempt_at > now() AND next_attempt_at <> 'infinity'),
         count(*) FILTER (WHERE status <> 'delivering' AND next_attempt_at = 'infinity'),
         count(*) FILTER (WHERE status = 'delivering'),
         (SELECT count(*) FROM courier.deliveries WHERE status = 'dead_lettered'),
         (SELECT count(*) FROM courier.subscriptions WHERE paused_at IS NOT NULL AND active),
         coalesce(extract(epoch FROM now() - min(next_attempt_at)
                          FILTER (WHERE status <> 'delivering' AND next_attempt_at <= now())), 0)
  FROM courier.deliveries
  WHERE status IN ('pending', 'retry_scheduled', 'delivering')
$$;

-- Retention: finished deliveries (and events left without deliveries) are
-- deleted in batches; their attempts go with their day's partition, dropped
-- once the longest retention has passed, and partitions are kept created
-- ahead. Returns the number of deliveries removed by this call.
-- Up to batch_size finished deliveries older than their window
-- (delivered/failed: completed_before; dead_lettered: dead_before) per call:
-- small batches keep locks and WAL bursts short; call it again while it
-- returns batch_size. Every CTE sees the table as it was: other deliveries of
-- an event count only if they are not being removed now. Runs with the
-- caller's rights (the daemon's maintenance leader); the partition functions
-- it calls are SECURITY DEFINER.
CREATE FUNCTION courier.prune(completed_before timestamptz, dead_before timestamptz, batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  removed integer;
BEGIN
  PERFORM courier.maintain_attempt_partitions(7, 0);
  PERFORM courier.drop_attempt_partitions(least(completed_before, dead_before));
  WITH victims AS (
    SELECT d.id, d.event_id FROM courier.deliveries d
    WHERE (d.status IN ('delivered', 'failed') AND d.completed_at < completed_before)
       OR (d.status = 'dead_lettered' AND d.completed_at < dead_before)
    ORDER BY d.completed_at
    LIMIT batch_size
    FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM courier.deliveries d USING victims v WHERE d.id = v.id RETURNING d.id, d.event_id
  ), gone_events AS (
    DELETE FROM courier.events e
    WHERE e.id IN (SELECT event_id FROM gone)
      AND NOT EXISTS (SELECT 1 FROM courier.deliveries d2
                      WHERE d2.event_id = e.id AND d2.id NOT IN (SELECT id FROM gone)))
  SELECT count(*) INTO removed FROM gone;
  RETURN removed;
END
$$;

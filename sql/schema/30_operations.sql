-- 30_operations: what the people who run pgcourier look at and what keeps
-- the tables small: status views, queue depth and lag, the metrics row, and
-- retention (courier.prune()). The per-table autovacuum settings of the queue
-- tables are part of their definitions (courier.deliveries in 10_core.sql,
-- courier.runs in 40_integrations.sql), and so are the partial indexes these
-- views and prune() read. 90_roles.sql grants the views to courier_operator.

-- Operator views. URLs are shown through courier.redact_url: an operator
-- (or a dashboard) never sees a receiver's token in a query string.
-- status 'delivering' and the lease come from the queue (a claim writes only
-- there; 10_core.sql).
CREATE VIEW courier.delivery_status AS
SELECT d.id, d.tenant_id, d.event_id, e.event_type, d.subscription_id, courier.redact_url(s.url) AS url,
       CASE WHEN q.lease_owner IS NOT NULL THEN 'delivering' ELSE d.status END AS status, d.attempts,
       coalesce(q.due_at, d.next_attempt_at) AS next_attempt_at, q.lease_owner, q.lease_expires_at,
       d.last_status_code, d.last_error, d.created_at, d.updated_at, d.completed_at
FROM courier.deliveries d
JOIN courier.events e ON e.id = d.event_id
JOIN courier.subscriptions s ON s.id = d.subscription_id
LEFT JOIN courier.delivery_queue q ON q.delivery_id = d.id;

CREATE VIEW courier.dead_letters AS
SELECT d.id AS delivery_id, d.tenant_id, d.subscription_id, courier.redact_url(s.url) AS url, d.attempts,
       d.last_status_code,
       d.last_error, d.completed_at AS dead_lettered_at,
       e.id AS event_id, e.event_type, e.payload, e.idempotency_key, e.trace_id, e.created_at AS event_created_at
FROM courier.delivery_dead_letters x
JOIN courier.deliveries d ON d.id = x.delivery_id
JOIN courier.events e ON e.id = d.event_id
JOIN courier.subscriptions s ON s.id = d.subscription_id;

CREATE VIEW courier.queue_summary AS
SELECT CASE WHEN q.lease_owner IS NOT NULL THEN 'delivering' ELSE d.status END AS status, count(*) AS deliveries,
       count(*) FILTER (WHERE q.lease_owner IS NULL AND q.due_at <= now()) AS due_now,
       min(q.due_at) FILTER (WHERE q.lease_owner IS NULL) AS oldest_due_at
FROM courier.deliveries d
LEFT JOIN courier.delivery_queue q ON q.delivery_id = d.id
GROUP BY 1;

-- A delivery's timeline, one row per attempt (dashboards, pgcourierctl inspect).
CREATE VIEW courier.delivery_timeline AS
SELECT a.delivery_id, d.tenant_id, d.subscription_id, d.event_id, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.outcome, a.error_class, a.retryable, a.error_summary, a.worker, a.response_excerpt
FROM courier.delivery_attempts a
JOIN courier.deliveries d ON d.id = a.delivery_id;

-- Queue depth of unfinished work by tenant, subscription and state. Reads
-- the queue (unfinished deliveries only), never the finished history.
CREATE VIEW courier.queue_depth AS
SELECT q.tenant_id, q.subscription_id,
       CASE WHEN q.lease_owner IS NOT NULL THEN 'delivering'
            WHEN q.due_at = 'infinity' THEN 'held'
            WHEN q.due_at <= now() THEN 'due'
            ELSE 'scheduled' END AS state,
       count(*) AS deliveries,
       min(q.created_at) AS oldest_created_at,
       min(q.due_at) FILTER (WHERE q.lease_owner IS NULL) AS earliest_next_attempt_at
FROM courier.delivery_queue q
GROUP BY 1, 2, 3;

-- How late the queue is: the oldest due delivery and how long it has waited.
CREATE VIEW courier.queue_lag AS
SELECT count(*) AS due_now,
       min(due_at) AS oldest_due_at,
       coalesce(extract(epoch FROM now() - min(due_at)), 0)::double precision AS lag_seconds
FROM courier.delivery_queue
WHERE lease_owner IS NULL AND due_at <= now();

-- One cheap row for metrics: queue depth by state, paused subscriptions, dead letters.
CREATE FUNCTION courier.queue_metrics(OUT due bigint, OUT scheduled bigint, OUT held bigint, OUT delivering bigint,
                                      OUT dead_lettered bigint, OUT paused_subscriptions bigint,
                                      OUT oldest_due_seconds double precision)
LANGUAGE sql STABLE SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT count(*) FILTER (WHERE lease_owner IS NULL AND due_at <= now()),
         count(*) FILTER (WHERE lease_owner IS NULL AND due_at > now() AND due_at <> 'infinity'),
         count(*) FILTER (WHERE lease_owner IS NULL AND due_at = 'infinity'),
         count(*) FILTER (WHERE lease_owner IS NOT NULL),
         (SELECT count(*) FROM courier.delivery_dead_letters),
         (SELECT count(*) FROM courier.subscriptions WHERE paused_at IS NOT NULL AND active),
         coalesce(extract(epoch FROM now() - min(due_at) FILTER (WHERE lease_owner IS NULL AND due_at <= now())), 0)
  FROM courier.delivery_queue
$$;

-- Retention: finished deliveries (and events left without deliveries) are
-- deleted in batches; their attempts go with their day's partition, dropped
-- once the longest retention has passed, and partitions are kept created
-- ahead. Returns the number of deliveries removed by this call.
-- About batch_size finished deliveries older than their window
-- (delivered/failed: completed_before; dead_lettered: dead_before) per call:
-- small batches keep locks and WAL bursts short; call it again while it
-- returns at least batch_size. Every CTE sees the table as it was: other deliveries of
-- an event count only if they are not being removed now. Runs with the
-- caller's rights (the daemon's maintenance leader); the partition functions
-- it calls are SECURITY DEFINER.
--
-- No index of courier.deliveries covers completed_at (each would make the
-- completion a non-HOT update): delivered and failed ones are found by a sweep
-- over created_at (a delivery finishes after it is created), resumed from
-- courier.prune_cursor where the last call stopped and started over once it
-- reaches the retention window, and dead letters through their own table.
CREATE TABLE courier.prune_cursor (
  only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  created_after timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO courier.prune_cursor DEFAULT VALUES;

-- Removes these deliveries, and the events left without any; returns how
-- many deliveries went. (prune's one way of removing.)
CREATE FUNCTION courier.remove_deliveries(ids text[]) RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, courier, pg_temp AS $$
  WITH gone AS (
    DELETE FROM courier.deliveries d WHERE d.id = ANY (ids) RETURNING d.id, d.event_id
  ), gone_events AS (
    DELETE FROM courier.events e
    WHERE e.id IN (SELECT event_id FROM gone)
      AND NOT EXISTS (SELECT 1 FROM courier.deliveries d2
                      WHERE d2.event_id = e.id AND d2.id NOT IN (SELECT id FROM gone)))
  SELECT count(*)::integer FROM gone
$$;

CREATE FUNCTION courier.prune(completed_before timestamptz, dead_before timestamptz, batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  removed integer := 0;
  cursor_at timestamptz;
  swept_to timestamptz;
  reached_end boolean := false;
BEGIN
  PERFORM courier.maintain_attempt_partitions(7, 0);
  PERFORM courier.drop_attempt_partitions(least(completed_before, dead_before));
  -- Dead letters past their window.
  removed := courier.remove_deliveries(ARRAY(
    SELECT x.delivery_id FROM courier.delivery_dead_letters x
    WHERE x.dead_lettered_at < dead_before ORDER BY x.dead_lettered_at LIMIT batch_size));
  -- Delivered and failed ones: stretches of the sweep, until batch_size are
  -- removed or the sweep reaches the window (it then starts over next time).
  SELECT c.created_after INTO cursor_at FROM courier.prune_cursor c FOR UPDATE;
  FOR stretch IN 1..20 LOOP
    EXIT WHEN removed >= batch_size;
    SELECT max(x.created_at) INTO swept_to
    FROM (SELECT d.created_at FROM courier.deliveries d
          WHERE d.created_at > cursor_at AND d.created_at < completed_before
          ORDER BY d.created_at LIMIT batch_size) x;
    IF swept_to IS NULL THEN
      reached_end := true;
      EXIT;
    END IF;
    removed := removed + courier.remove_deliveries(ARRAY(
      SELECT d.id FROM courier.deliveries d
      WHERE d.created_at > cursor_at AND d.created_at <= swept_to
        AND d.status IN ('delivered', 'failed') AND d.completed_at < completed_before));
    cursor_at := swept_to;
  END LOOP;
  UPDATE courier.prune_cursor SET created_after = CASE WHEN reached_end THEN '-infinity' ELSE cursor_at END;
  RETURN removed;
END
$$;

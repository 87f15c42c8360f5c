-- 003_operations: what the people who run pgcourier look at and what keeps
-- the tables small: status views, queue depth, retention.

-- Finished deliveries by age: retention pruning and dead-letter counts use it.
CREATE INDEX deliveries_finished ON courier.deliveries (completed_at)
  WHERE status IN ('delivered', 'failed', 'dead_lettered');

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
LANGUAGE sql STABLE AS $$
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

-- Retention: removes up to batch_size finished deliveries older than their
-- window (delivered/failed: completed_before; dead_lettered: dead_before),
-- their attempts, and events left without deliveries. Small batches keep
-- locks and WAL bursts short; call it again while it returns batch_size.
CREATE FUNCTION courier.prune(completed_before timestamptz, dead_before timestamptz, batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  removed integer;
BEGIN
  WITH victims AS (
    SELECT d.id, d.event_id FROM courier.deliveries d
    WHERE (d.status IN ('delivered', 'failed') AND d.completed_at < completed_before)
       OR (d.status = 'dead_lettered' AND d.completed_at < dead_before)
    ORDER BY d.completed_at
    LIMIT batch_size
    FOR UPDATE SKIP LOCKED
  ), gone_attempts AS (
    DELETE FROM courier.delivery_attempts a USING victims v WHERE a.delivery_id = v.id
  ), gone AS (
    DELETE FROM courier.deliveries d USING victims v WHERE d.id = v.id RETURNING d.id, d.event_id
  ), gone_events AS (
    -- Every CTE sees the table as it was: other deliveries of the event count
    -- only if they are not being removed now.
    DELETE FROM courier.events e
    WHERE e.id IN (SELECT event_id FROM gone)
      AND NOT EXISTS (SELECT 1 FROM courier.deliveries d2
                      WHERE d2.event_id = e.id AND d2.id NOT IN (SELECT id FROM gone))
  )
  SELECT count(*) INTO removed FROM gone;
  RETURN removed;
END
$$;

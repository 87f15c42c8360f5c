-- 005_partition_attempts: courier.delivery_attempts becomes a table
-- partitioned by day (started_at, UTC), so retention removes old attempts by
-- dropping whole partitions instead of deleting rows one by one.
--
-- Partitions are named delivery_attempts_pYYYYMMDD and created 7 days ahead
-- by courier.maintain_attempt_partitions(), which the maintenance leader runs
-- through courier.prune(). A DEFAULT partition catches rows outside every
-- daily partition (e.g. a daemon whose clock is far off), so an insert never
-- fails for want of a partition.
--
-- The primary key includes started_at (PostgreSQL requires the partition key
-- in it); one row per (delivery, attempt) is still guaranteed by the outcome
-- statement, which writes an attempt only while holding its lease.

ALTER TABLE courier.delivery_attempts RENAME TO delivery_attempts_unpartitioned;
DROP TRIGGER delivery_attempts_append_only ON courier.delivery_attempts_unpartitioned;
DROP VIEW courier.delivery_timeline;

CREATE TABLE courier.delivery_attempts (
  delivery_id      text NOT NULL,
  attempt          int NOT NULL CHECK (attempt >= 1),
  started_at       timestamptz NOT NULL,
  duration_ms      double precision NOT NULL DEFAULT 0,
  status_code      int,
  outcome          text NOT NULL,
  error_class      text CHECK (error_class IN ('transient', 'rate_limited', 'auth', 'validation', 'poison',
                                               'blocked_destination')),
  retryable        boolean NOT NULL DEFAULT false,
  error_summary    text CHECK (octet_length(error_summary) <= 512),
  response_excerpt text CHECK (octet_length(response_excerpt) <= 65536),
  worker           text NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (delivery_id, attempt, started_at)
) PARTITION BY RANGE (started_at);

CREATE TABLE courier.delivery_attempts_default PARTITION OF courier.delivery_attempts DEFAULT;

CREATE TRIGGER delivery_attempts_append_only BEFORE UPDATE ON courier.delivery_attempts
  FOR EACH ROW EXECUTE FUNCTION courier.forbid_attempt_changes();

-- Creates the daily partitions from `days_back` days ago to `days_ahead`
-- days ahead that do not exist yet. Returns how many it created. A day whose
-- rows already sit in the DEFAULT partition is skipped with a NOTICE.
CREATE FUNCTION courier.maintain_attempt_partitions(days_ahead integer DEFAULT 7, days_back integer DEFAULT 0)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier AS $$
DECLARE
  today date := (now() AT TIME ZONE 'UTC')::date;
  day date;
  name text;
  created integer := 0;
BEGIN
  FOR day IN SELECT generate_series(today - days_back, today + days_ahead, interval '1 day')::date LOOP
    name := 'delivery_attempts_p' || to_char(day, 'YYYYMMDD');
    CONTINUE WHEN to_regclass('courier.' || name) IS NOT NULL;
    BEGIN
      EXECUTE format('CREATE TABLE courier.%I PARTITION OF courier.delivery_attempts FOR VALUES FROM (%L) TO (%L)',
                     name, day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
      created := created + 1;
    EXCEPTION WHEN others THEN
      RAISE NOTICE 'pgcourier: cannot create partition % (%); its rows stay in the default partition', name, SQLERRM;
    END;
  END LOOP;
  RETURN created;
END
$$;

-- Drops the daily partitions that end before `older_than` and deletes the
-- default partition's rows older than it. Returns how many partitions it dropped.
CREATE FUNCTION courier.drop_attempt_partitions(older_than timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier AS $$
DECLARE
  part record;
  dropped integer := 0;
BEGIN
  FOR part IN
    SELECT c.relname
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'courier.delivery_attempts'::regclass
      AND c.relname ~ '^delivery_attempts_p[0-9]{8}$'
      AND (to_date(substring(c.relname FROM 20 FOR 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= older_than
  LOOP
    EXECUTE format('DROP TABLE courier.%I', part.relname);
    dropped := dropped + 1;
  END LOOP;
  DELETE FROM courier.delivery_attempts_default WHERE started_at < older_than;
  RETURN dropped;
END
$$;

SELECT courier.maintain_attempt_partitions(7, 1);

INSERT INTO courier.delivery_attempts
SELECT delivery_id, attempt, started_at, duration_ms, status_code, outcome, error_class, retryable,
       error_summary, response_excerpt, worker, recorded_at
FROM courier.delivery_attempts_unpartitioned;
DROP TABLE courier.delivery_attempts_unpartitioned;

CREATE VIEW courier.delivery_timeline AS
SELECT a.delivery_id, d.tenant_id, d.subscription_id, d.event_id, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.outcome, a.error_class, a.retryable, a.error_summary, a.worker
FROM courier.delivery_attempts a
JOIN courier.deliveries d ON d.id = a.delivery_id;

-- Retention: finished deliveries (and events left without deliveries) are
-- deleted in batches; their attempts go with their day's partition, dropped
-- once the longest retention has passed, and partitions are kept created
-- ahead. Returns the number of deliveries removed by this call.
CREATE OR REPLACE FUNCTION courier.prune(completed_before timestamptz, dead_before timestamptz, batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql AS $$
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

REVOKE EXECUTE ON FUNCTION courier.maintain_attempt_partitions(integer, integer),
                           courier.drop_attempt_partitions(timestamptz) FROM PUBLIC;

DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_daemon') THEN
    GRANT SELECT, INSERT, DELETE ON courier.delivery_attempts TO courier_daemon;
    GRANT EXECUTE ON FUNCTION courier.maintain_attempt_partitions(integer, integer),
                              courier.drop_attempt_partitions(timestamptz) TO courier_daemon;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_operator') THEN
    GRANT SELECT ON courier.delivery_timeline TO courier_operator;
  END IF;
END
$grants$;

-- claim_due: leases due deliveries to worker $1 for $3 ms: at most $2 rows and
-- $5 payload bytes, and besides them the first row even when it is larger,
-- if it is at most $12 bytes (so one large payload is never stuck; the daemon
-- says how large: lanes/deliveries/lane.cpp), only of the tenants in $4
-- (empty: every tenant), fairly:
--   * never a subscription in $9 or a tenant in $10 (at their in-flight cap
--     in this daemon: their rows are not even looked at);
--   * at most $7[i] rows of subscription $6[i], $8 of any other (the
--     daemon's per-endpoint windows, lanes/deliveries/fairness.hpp);
--   * first attempts: the subscriptions with work are visited in turn, in id
--     order from just after $11 (where this daemon's previous claim stopped)
--     round to it again, each giving up to its window of its oldest rows, so
--     one subscription's backlog cannot keep another's new event waiting;
--   * retries are looked for by due time, separately (up to $2), so a storm
--     of due retries cannot hide new events either; within a subscription
--     first attempts go first, and the batch takes the first row of every
--     subscription, then the second of each, and so on;
--   * FIFO subscriptions: nothing overtakes an unfinished earlier delivery
--     with the same key;
--   * where the look for first attempts starts (lanes/deliveries/
--     scan_floors.hpp): not before due time $14[i] (unix microseconds) in
--     subscription $13[i], not before $15 in the others and in the visit
--     ($15 NULL: anywhere). The rows before a floor are the ones claims
--     already took: under a snapshot held open they stay in the index, and
--     a look from the floor on passes over none of them (the index descends
--     to it). The daemon passes no floors at all in one claim a second,
--     which finds whatever a floor hid (a row committed late, with an early
--     due time).
-- The rows are locked with SKIP LOCKED, so several daemons claim side by side
-- without waiting; the lease is written to the queue row only
-- (courier.deliveries is not touched until the attempt's result). Each row
-- comes back with its event, subscription and sealed secrets: one round trip
-- per batch.
WITH RECURSIVE floors AS (
  SELECT coalesce(to_timestamp($15::bigint / 1e6), '-infinity'::timestamptz) AS at
), after_cursor AS (
  -- A skip scan of delivery_queue_first: one probe per subscription (the
  -- index holds a subscription's newest rows first, so a probe meets a live
  -- row at once when the oldest ones have been claimed).
  SELECT (SELECT min(q.subscription_id) FROM courier.delivery_queue q
          WHERE q.lease_owner IS NULL AND NOT q.retry AND q.due_at <> 'infinity' AND q.due_at >= floors.at
            AND q.subscription_id > $11)
    AS subscription_id
  FROM floors
  UNION ALL
  SELECT (SELECT min(q.subscription_id) FROM courier.delivery_queue q
          WHERE q.lease_owner IS NULL AND NOT q.retry AND q.due_at <> 'infinity' AND q.due_at >= floors.at
            AND q.subscription_id > a.subscription_id)
  FROM after_cursor a, floors WHERE a.subscription_id IS NOT NULL
), up_to_cursor AS (
  SELECT (SELECT min(q.subscription_id) FROM courier.delivery_queue q
          WHERE q.lease_owner IS NULL AND NOT q.retry AND q.due_at <> 'infinity' AND q.due_at >= floors.at)
    AS subscription_id
  FROM floors
  UNION ALL
  SELECT (SELECT min(q.subscription_id) FROM courier.delivery_queue q
          WHERE q.lease_owner IS NULL AND NOT q.retry AND q.due_at <> 'infinity' AND q.due_at >= floors.at
            AND q.subscription_id > u.subscription_id)
  FROM up_to_cursor u, floors WHERE u.subscription_id <= $11
), visited AS (
  SELECT subscription_id FROM after_cursor WHERE subscription_id IS NOT NULL
  UNION ALL
  SELECT subscription_id FROM up_to_cursor WHERE subscription_id <= $11
), first_attempts AS (
  -- Read lazily: the visit stops once $2 rows are found.
  SELECT f.*
  FROM visited v
  LEFT JOIN unnest($6::text[], $7::int[]) AS w(subscription_id, slots) ON w.subscription_id = v.subscription_id
  LEFT JOIN unnest($13::text[], $14::bigint[]) AS fl(subscription_id, due_us) ON fl.subscription_id = v.subscription_id
  CROSS JOIN floors
  CROSS JOIN LATERAL (
    SELECT q.ctid AS row_id, q.delivery_id, q.subscription_id, q.due_at, q.payload_bytes, 0 AS class
    FROM courier.delivery_queue q
    WHERE q.subscription_id = v.subscription_id
      AND q.lease_owner IS NULL AND NOT q.retry AND q.due_at <> 'infinity' AND q.due_at <= now()
      AND q.due_at >= coalesce(to_timestamp(fl.due_us / 1e6), floors.at)
      AND (cardinality($4::text[]) = 0 OR q.tenant_id = ANY ($4::text[])) AND q.tenant_id <> ALL ($10::text[])
      AND (q.ordering_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM courier.delivery_queue p
            WHERE p.subscription_id = q.subscription_id AND p.ordering_key = q.ordering_key
              AND (p.created_at, p.delivery_id) < (q.created_at, q.delivery_id)))
    ORDER BY q.due_at, q.delivery_id  -- in publish order within a transaction (migration 003)
    LIMIT coalesce(w.slots, $8)
    FOR UPDATE SKIP LOCKED) f
  WHERE v.subscription_id <> ALL ($9::text[])
  LIMIT $2
), retries AS (
  SELECT q.ctid AS row_id, q.delivery_id, q.subscription_id, q.due_at, q.payload_bytes, 1 AS class
   FROM courier.delivery_queue q
   WHERE q.lease_owner IS NULL AND q.retry AND q.due_at <= now()
     AND (cardinality($4::text[]) = 0 OR q.tenant_id = ANY ($4::text[]))
     AND q.subscription_id <> ALL ($9::text[]) AND q.tenant_id <> ALL ($10::text[])
     AND (q.ordering_key IS NULL OR NOT EXISTS (
           SELECT 1 FROM courier.delivery_queue p
           WHERE p.subscription_id = q.subscription_id AND p.ordering_key = q.ordering_key
             AND (p.created_at, p.delivery_id) < (q.created_at, q.delivery_id)))
   ORDER BY q.due_at
   LIMIT $2
   FOR UPDATE SKIP LOCKED
), candidates AS (
  SELECT * FROM first_attempts UNION ALL SELECT * FROM retries
), ranked AS (
  SELECT c.*, row_number() OVER (PARTITION BY c.subscription_id ORDER BY c.class, c.due_at, c.delivery_id) AS nth
  FROM candidates c
), allowed AS (
  -- The byte budget counts the rows that fit it: one larger row (which can
  -- only go first) does not keep the small ones behind it out.
  SELECT r.*, row_number() OVER w AS position,
         sum(CASE WHEN r.payload_bytes <= $5::bigint THEN r.payload_bytes ELSE 0 END) OVER w AS fitting_bytes
  FROM ranked r
  LEFT JOIN unnest($6::text[], $7::int[]) AS s(subscription_id, slots) ON s.subscription_id = r.subscription_id
  WHERE r.nth <= coalesce(s.slots, $8)
  WINDOW w AS (ORDER BY r.nth, r.class, r.due_at, r.delivery_id)
), picked AS (
  -- The locked rows are found again by their row id (ctid: they cannot move
  -- while this transaction holds their lock), not by another index probe.
  SELECT a.row_id FROM allowed a
  WHERE a.position <= $2
    AND ((a.payload_bytes <= $5::bigint AND a.fitting_bytes <= $5::bigint) OR (a.position = 1 AND a.payload_bytes <= $12::bigint))
), claimed AS (
  UPDATE courier.delivery_queue q
  SET lease_owner = $1, lease_expires_at = now() + $3::bigint * interval '1 millisecond'
  FROM picked WHERE q.ctid = picked.row_id
  RETURNING q.delivery_id AS id, q.tenant_id, q.event_id, q.subscription_id, q.attempts, q.attempt_budget_base,
            q.ordering_key, q.retry, q.due_at
)
SELECT c.id, c.tenant_id, c.event_id, c.subscription_id, c.attempts AS previous_attempts,
       e.event_type, e.payload::text AS payload_json, e.trace_id,
       to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS event_created_at,
       (extract(epoch FROM e.created_at) * 1000000)::bigint AS event_created_us,
       s.url, s.policy AS policy_name, s.active AS subscription_active,
       (SELECT string_agg(ss.sealed_secret, ' ' ORDER BY ss.created_at DESC)
        FROM courier.subscription_secrets ss
        WHERE ss.subscription_id = s.id AND ss.revoked_at IS NULL
          AND (ss.expires_at IS NULL OR ss.expires_at > now())) AS sealed_secrets,
       s.paused_at IS NOT NULL AS subscription_paused, c.attempt_budget_base, c.ordering_key,
       s.max_in_flight, s.rate_limit_per_second AS rate_per_second, s.rate_limit_burst AS rate_burst,
       s.tenant_id = c.tenant_id AND e.tenant_id = c.tenant_id AS tenant_consistent,
       e.payload_bytes, (SELECT count(*) FROM candidates) AS candidates,
       c.retry, (extract(epoch FROM c.due_at) * 1000000)::bigint AS due_us
FROM claimed c
JOIN courier.events e ON e.id = c.event_id
JOIN courier.subscriptions s ON s.id = c.subscription_id

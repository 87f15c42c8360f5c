-- shift_schedules: the database clock stepped back by $1 ms (the maintenance
-- leader saw it: engine/clock_shift.hpp), so every due time and lease written
-- on the old clock lies $1 ms too late on the new one; this moves them back by
-- it. One batch of a single pass over the queue in id order: the $3 queue
-- rows after delivery id $2. Returns the last id visited (where the next
-- batch starts), how many rows it visited (fewer than $3: the pass is over)
-- and how many due times and leases it moved.
--
-- Moved is what was written on the old clock, and nothing written since:
--   * a due time whose delivery was written after now() (updated_at: every
--     writer of next_attempt_at sets it in the same statement). A row written
--     since the step has updated_at <= now(), so it is never moved; its
--     updated_at moves with it, so no row is moved twice for one step. Rows
--     written more than the step before it are not recognised (their
--     updated_at is before now() too): they become due within their own
--     delay of the step, not the step's length later.
--   * a lease that expires more than $4 ms from now (the daemon passes twice
--     its lease_duration). A claim or heartbeat since the step wrote at most
--     now() + its lease_duration, so only a lease of the old clock lies
--     beyond that (and one of a daemon with a lease up to twice the leader's
--     is never moved). Live leases are renewed on the new clock within a
--     third of a lease anyway: this is for those of a daemon that died, which
--     are then rescued on time; a lease of the old clock within $4 ms of now
--     is left, and rescued at most that late.
-- Rows locked now are skipped (never waited for: no deadlock with the
-- delivery path): a claim, an outcome, a heartbeat or a release holds them,
-- and the lease or due time they get is of the new clock. Created times
-- (the FIFO order) are history and are not moved.
WITH visited AS (
  SELECT q.delivery_id FROM courier.delivery_queue q
  WHERE q.delivery_id > $2
  ORDER BY q.delivery_id
  LIMIT $3
), old AS (
  SELECT q.ctid AS row_id, q.delivery_id, d.updated_at > now() AS due_old,
         coalesce(q.lease_expires_at > now() + $4::bigint * interval '1 millisecond', false) AS lease_old
  FROM visited v
  JOIN courier.delivery_queue q ON q.delivery_id = v.delivery_id
  JOIN courier.deliveries d ON d.id = q.delivery_id
  WHERE d.updated_at > now() OR q.lease_expires_at > now() + $4::bigint * interval '1 millisecond'
  FOR UPDATE OF q SKIP LOCKED
), queue AS (
  UPDATE courier.delivery_queue q
  SET due_at = CASE WHEN o.due_old THEN q.due_at - $1::bigint * interval '1 millisecond' ELSE q.due_at END,
      lease_expires_at = CASE WHEN o.lease_old THEN q.lease_expires_at - $1::bigint * interval '1 millisecond'
                              ELSE q.lease_expires_at END
  FROM old o WHERE q.ctid = o.row_id
  RETURNING q.delivery_id, o.due_old, o.lease_old
), deliveries AS (
  -- The delivery keeps the queue's due time (its trigger then finds nothing to change).
  UPDATE courier.deliveries d
  SET next_attempt_at = d.next_attempt_at - $1::bigint * interval '1 millisecond',
      updated_at = d.updated_at - $1::bigint * interval '1 millisecond'
  FROM queue x WHERE d.id = x.delivery_id AND x.due_old
)
SELECT (SELECT max(delivery_id) FROM visited) AS last_id,
       (SELECT count(*) FROM visited)::int AS visited,
       (SELECT count(*) FROM queue WHERE due_old)::int AS due_times,
       (SELECT count(*) FROM queue WHERE lease_old)::int AS leases

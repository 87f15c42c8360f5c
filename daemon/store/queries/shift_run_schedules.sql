-- shift_run_schedules: shift_schedules.sql for the runs (the same rules, read
-- there): after a backward step of $1 ms of the database clock, the due
-- times of unfinished runs written on the old clock (updated_at after now(),
-- moved with them) and their leases of the old clock (expiring more than $4
-- ms from now) move back by $1 ms. One batch of one pass over courier.runs in
-- id order, the $3 rows after run id $2 (finished ones are visited and left:
-- a batch reads at most $3 rows). Locked rows are skipped.
WITH visited AS (
  SELECT r.id FROM courier.runs r
  WHERE r.id > $2
  ORDER BY r.id
  LIMIT $3
), old AS (
  SELECT r.id, r.updated_at > now() AS due_old,
         coalesce(r.lease_expires_at > now() + $4::bigint * interval '1 millisecond', false) AS lease_old
  FROM visited v
  JOIN courier.runs r ON r.id = v.id
  WHERE r.status IN ('pending', 'running')
    AND (r.updated_at > now() OR r.lease_expires_at > now() + $4::bigint * interval '1 millisecond')
  FOR UPDATE OF r SKIP LOCKED
), moved AS (
  UPDATE courier.runs r
  SET next_attempt_at = CASE WHEN o.due_old THEN r.next_attempt_at - $1::bigint * interval '1 millisecond'
                             ELSE r.next_attempt_at END,
      updated_at = CASE WHEN o.due_old THEN r.updated_at - $1::bigint * interval '1 millisecond'
                        ELSE r.updated_at END,
      lease_expires_at = CASE WHEN o.lease_old THEN r.lease_expires_at - $1::bigint * interval '1 millisecond'
                              ELSE r.lease_expires_at END
  FROM old o WHERE r.id = o.id
  RETURNING o.due_old, o.lease_old
)
SELECT (SELECT max(id) FROM visited) AS last_id,
       (SELECT count(*) FROM visited)::int AS visited,
       (SELECT count(*) FROM moved WHERE due_old)::int AS due_times,
       (SELECT count(*) FROM moved WHERE lease_old)::int AS leases

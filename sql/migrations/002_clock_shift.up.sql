-- 002: after a backward step of the database clock, the maintenance leader
-- moves the due times of unfinished runs written on the old clock back by
-- the step (daemon/store/queries/shift_run_schedules.sql), so the daemon now
-- writes courier.runs.next_attempt_at itself (it wrote it only through
-- courier.record_run_outcomes() and courier.release_runs() before). A grant
-- only: the previous release's daemons keep working unchanged. Granted to
-- the role only where it exists, as sql/schema/90_roles.sql does.
DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_daemon') THEN
    GRANT UPDATE (next_attempt_at) ON courier.runs TO courier_daemon;
  END IF;
END
$grants$;

-- 008_quieter_notify: NOTIFY only when there is something to wake up for.
-- PostgreSQL serialises committing transactions that NOTIFY: each holds a
-- database-wide lock until its commit has been flushed. So a NOTIFY costs
-- every other notifying transaction (producers publishing, the daemon
-- recording outcomes) a wait, and none should be sent for nothing:
-- * the statement-level triggers fired even when their INSERT added no row
--   (an event no subscription matches, an outcome batch without outbox
--   events); now they look at the inserted rows first;
-- * the daemon's outcome statement sets courier.outbox_notify = 'deferred'
--   for its own transaction and sends one coalesced NOTIFY courier_outbox
--   after its commits (at most every 100 ms), so its per-batch commit does not
--   queue behind the producers' commits. Every other writer of the outbox
--   (courier.emit, run triggers, the CLI) still notifies at its commit.
-- One trigger function for the three channels replaces notify_deliveries(),
-- notify_runs() and notify_outbox().

-- Trigger arguments: the channel, then 'deferrable' when a transaction may
-- set courier.outbox_notify = 'deferred' to leave the NOTIFY to its caller.
CREATE FUNCTION courier.notify_when_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  IF TG_NARGS > 1 AND TG_ARGV[1] = 'deferrable'
     AND coalesce(current_setting('courier.outbox_notify', true), '') = 'deferred' THEN
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT 1 FROM inserted) THEN
    PERFORM pg_notify(TG_ARGV[0], '');
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER deliveries_notify ON courier.deliveries;
CREATE TRIGGER deliveries_notify AFTER INSERT ON courier.deliveries
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION courier.notify_when_inserted('courier_deliveries');
DROP TRIGGER runs_notify ON courier.runs;
CREATE TRIGGER runs_notify AFTER INSERT ON courier.runs
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION courier.notify_when_inserted('courier_runs');
DROP TRIGGER outbox_notify ON courier.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON courier.outbox
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION courier.notify_when_inserted('courier_outbox', 'deferrable');

DROP FUNCTION courier.notify_deliveries();
DROP FUNCTION courier.notify_runs();
DROP FUNCTION courier.notify_outbox();

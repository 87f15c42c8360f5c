-- notify_outbox: the coalesced wake-up for outbox consumers after the
-- daemon's outcome statements (which defer their own NOTIFY). Empty payload:
-- the notification carries nothing any listener could use.
SELECT pg_notify('courier_outbox', '')

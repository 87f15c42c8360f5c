-- defer_outbox_notify: the outbox rows of this transaction do not NOTIFY at
-- its commit (a lock every notifying commit of the database queues for);
-- the engine sends one coalesced notify_outbox afterwards.
SELECT set_config('courier.outbox_notify', 'deferred', true)

-- begin_outcomes: the first statement of the transaction of record_outcomes.
-- * Its outbox rows do not NOTIFY at its commit (a lock every notifying commit
--   of the database queues for); the engine sends one coalesced notify_outbox
--   afterwards.
-- * It writes courier.delivery_queue itself (the lease, the due time, the
--   row of a finished delivery), so the trigger that keeps the queue in step
--   with every other writer of courier.deliveries stands aside.
SELECT set_config('courier.outbox_notify', 'deferred', true),
       set_config('courier.queue_maintained', 'on', true)

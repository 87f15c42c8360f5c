-- 003: delivery_queue_first holds each subscription's rows newest first
-- (due_at DESC, then delivery_id DESC). A claim's skip scan asks every subscription for one row
-- with work: oldest first, it met all the rows claims had already taken
-- before a live one, and under a snapshot held open (a long report, a
-- pg_dump) those stay in the index until the snapshot ends, so every claim
-- got slower by the minute (issue 15's held-xmin scenario). Newest first, it
-- meets a live row at once; the claim's look for a subscription's oldest
-- rows reads the same index backwards, from the daemon's floor
-- (daemon/store/queries/claim_due.sql). delivery_id breaks ties of due_at
-- (the events of one producer transaction share its time): ids grow with
-- the clock they are made at (courier.new_id), so a transaction's events
-- go out in the order it published them. Read backwards, an index of due_at
-- alone gave its ties in reverse, last published first. The previous
-- release's claim reads the new index as well as the old one (the same
-- leading columns and predicate), so daemons of both releases keep working
-- during a rolling upgrade.
--
-- The index is built in this transaction (not CONCURRENTLY: a delta runs in
-- a transaction block), which blocks writes of the queue table while it
-- builds: a queue of due work is small, and lock_timeout makes the delta fail
-- rather than queue the delivery path behind it if the table is busy.
SET LOCAL lock_timeout = '5s';
CREATE INDEX delivery_queue_first_newest ON courier.delivery_queue (subscription_id, due_at DESC, delivery_id DESC)
  WHERE lease_owner IS NULL AND NOT retry AND due_at <> 'infinity';
DROP INDEX courier.delivery_queue_first;
ALTER INDEX courier.delivery_queue_first_newest RENAME TO delivery_queue_first;
SET LOCAL lock_timeout TO DEFAULT;

-- wake_held: deliveries held unattempted (last_error 'held: ...': an unknown
-- policy, no usable signing secret) become due now, after a reload or a
-- restart may have fixed what held them. Found through the queue's unleased,
-- not yet due rows (a paused subscription's, at 'infinity', stay held).
UPDATE courier.deliveries d
SET next_attempt_at = now(), updated_at = now()
FROM courier.delivery_queue q
WHERE q.lease_owner IS NULL AND q.due_at > now() AND q.due_at <> 'infinity' AND d.id = q.delivery_id
  AND starts_with(d.last_error, 'held: ')

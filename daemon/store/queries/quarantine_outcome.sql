-- quarantine_outcome: the last resort when a row's outcome breaks a
-- constraint ($1 worker, $2 delivery, $3 attempt, $4 the database's reason):
-- the delivery ends failed with the reason, so the rest of its batch commits.
-- The same fence as record_outcomes (the queue row's owner, the attempt).
WITH updated AS (
  UPDATE courier.deliveries d
  SET status = 'failed', attempts = $3, last_error = $4, updated_at = now(), completed_at = now()
  FROM courier.delivery_queue q
  WHERE d.id = $2 AND d.attempts = $3 - 1 AND q.delivery_id = d.id AND q.lease_owner = $1
  RETURNING d.id
)
INSERT INTO courier.delivery_attempts
  (delivery_id, attempt, started_at, outcome, error_class, retryable, error_summary, worker)
SELECT id, $3, now(), 'record_error', 'poison', false, $4, $1 FROM updated
ON CONFLICT DO NOTHING
RETURNING delivery_id

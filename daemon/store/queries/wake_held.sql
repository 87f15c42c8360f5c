-- wake_held: deliveries held unattempted (last_error 'held: ...': an unknown
-- policy, no usable signing secret) become due now, after a reload or a
-- restart may have fixed what held them.
UPDATE courier.deliveries
SET next_attempt_at = now(), updated_at = now()
WHERE status IN ('pending', 'retry_scheduled') AND next_attempt_at > now() AND starts_with(last_error, 'held: ')

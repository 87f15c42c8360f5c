-- release_leases: claimed deliveries of worker $1 given back without an
-- attempt ($2 ids, $3 delays in ms, negative: until the subscription is
-- resumed, $4 reasons): over a limit, held, or at shutdown. The queue row's
-- lease goes and its due time is set; the delivery keeps the reason and the
-- same due time (its attempts do not change, so its trigger keeps what this
-- statement set). Returns one row per release.
WITH input AS (
  SELECT i.id, i.reason,
         CASE
           -- held until the subscription is resumed, unless it was resumed meanwhile
           WHEN i.delay_ms < 0 AND EXISTS (SELECT 1 FROM courier.subscriptions s
                                           WHERE s.id = q.subscription_id AND s.paused_at IS NOT NULL)
             THEN 'infinity'::timestamptz
           WHEN i.delay_ms < 0 THEN now()
           ELSE now() + i.delay_ms * interval '1 millisecond' END AS due_at
  FROM unnest($2::text[], $3::bigint[], $4::text[]) AS i(id, delay_ms, reason)
  JOIN courier.delivery_queue q ON q.delivery_id = i.id AND q.lease_owner = $1
), released AS (
  UPDATE courier.delivery_queue q
  SET lease_owner = NULL, lease_expires_at = NULL, due_at = i.due_at
  FROM input i WHERE q.delivery_id = i.id AND q.lease_owner = $1
  RETURNING q.delivery_id, q.due_at
)
UPDATE courier.deliveries d
SET next_attempt_at = r.due_at, last_error = i.reason, updated_at = now()
FROM released r JOIN input i ON i.id = r.delivery_id
WHERE d.id = r.delivery_id
RETURNING d.id

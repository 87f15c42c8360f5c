-- release_leases: claimed deliveries of worker $1 given back without an
-- attempt ($2 ids, $3 delays in ms, negative: until the subscription is
-- resumed, $4 reasons): over a limit, held, or at shutdown.
UPDATE courier.deliveries d
SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retry_scheduled' END,
    lease_owner = NULL, lease_expires_at = NULL,
    next_attempt_at = CASE
      -- held until the subscription is resumed, unless it was resumed meanwhile
      WHEN i.delay_ms < 0 AND EXISTS (SELECT 1 FROM courier.subscriptions s
                                      WHERE s.id = d.subscription_id AND s.paused_at IS NOT NULL) THEN 'infinity'
      WHEN i.delay_ms < 0 THEN now()
      ELSE now() + i.delay_ms * interval '1 millisecond' END,
    last_error = i.reason, updated_at = now()
FROM unnest($2::text[], $3::bigint[], $4::text[]) AS i(id, delay_ms, reason)
WHERE d.id = i.id AND d.status = 'delivering' AND d.lease_owner = $1

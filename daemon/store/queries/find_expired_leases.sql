-- find_expired_leases: up to $1 deliveries whose lease expired while their
-- owner held it (its daemon died or stalled: heartbeats renew the leases of
-- live daemons), oldest first, from the queue's leased rows. Read only: the
-- rescue decides in C++ and writes through record_outcomes, fenced by the
-- same owner and attempt and by the lease still being expired.
SELECT q.delivery_id, q.lease_owner, s.policy AS policy_name, q.attempts AS previous_attempts,
       q.attempt_budget_base, q.subscription_id
FROM courier.delivery_queue q
JOIN courier.subscriptions s ON s.id = q.subscription_id
WHERE q.lease_owner IS NOT NULL AND q.lease_expires_at < now()
ORDER BY q.lease_expires_at
LIMIT $1

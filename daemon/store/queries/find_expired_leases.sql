-- find_expired_leases: up to $1 deliveries whose lease expired while their
-- owner held it (its daemon died or stalled), oldest first. Read only: the
-- rescue decides in C++ and writes through record_outcomes, fenced by the
-- same owner and attempt (and by the lease still being expired).
SELECT d.id AS delivery_id, d.lease_owner, s.policy AS policy_name, d.attempts AS previous_attempts,
       d.attempt_budget_base, d.subscription_id
FROM courier.deliveries d
JOIN courier.subscriptions s ON s.id = d.subscription_id
WHERE d.status = 'delivering' AND d.lease_expires_at < now()
ORDER BY d.lease_expires_at
LIMIT $1

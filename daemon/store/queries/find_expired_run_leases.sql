-- find_expired_run_leases: up to $1 runs whose lease expired while their
-- owner held it, oldest first. Read only, like find_expired_leases.
SELECT r.id AS run_id, r.lease_owner, coalesce(c.policy, 'default') AS policy_name, r.attempts AS previous_attempts,
       r.attempt_budget_base, r.rate_limited_attempts
FROM courier.runs r
LEFT JOIN courier.connections c ON c.id = r.connection_id
WHERE r.status = 'running' AND r.lease_expires_at < now()
ORDER BY r.lease_expires_at
LIMIT $1

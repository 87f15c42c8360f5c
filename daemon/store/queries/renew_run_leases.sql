-- renew_run_leases: the heartbeat of worker $1 for its runs in flight ($2):
-- their leases last $3 ms more; a lease already taken over is not renewed.
-- Returns how many were renewed.
UPDATE courier.runs r
SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
FROM unnest($2::text[]) AS i(id)
WHERE r.id = i.id AND r.status = 'running' AND r.lease_owner = $1

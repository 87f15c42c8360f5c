-- renew_leases: the heartbeat of worker $1: its leases of the deliveries in
-- $2 (its requests in flight) last $3 ms more. One statement per heartbeat, a
-- HOT update of the queue rows (lease_expires_at is in no index); a lease
-- already taken back (it expired and was rescued) is not renewed. Returns how
-- many were renewed.
UPDATE courier.delivery_queue q
SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
FROM unnest($2::text[]) AS i(id)
WHERE q.delivery_id = i.id AND q.lease_owner = $1

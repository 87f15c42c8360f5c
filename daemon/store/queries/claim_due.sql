-- claim_due: leases up to $2 due deliveries to worker $1 for $3 ms, only of
-- the tenants in $4 (empty: every tenant). The inner SELECT matches the
-- partial index deliveries_due exactly; SKIP LOCKED lets several daemons
-- claim side by side without waiting. Each row comes back with its event,
-- subscription and sealed secrets: one round trip per batch.
WITH due AS (
  SELECT d.id FROM courier.deliveries d
  WHERE d.status IN ('pending', 'retry_scheduled') AND d.next_attempt_at <= now()
    AND (cardinality($4::text[]) = 0 OR d.tenant_id = ANY ($4::text[]))
    -- FIFO subscriptions: nothing overtakes an unfinished earlier delivery with the same key.
    AND (d.ordering_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM courier.deliveries p
          WHERE p.subscription_id = d.subscription_id AND p.ordering_key = d.ordering_key
            AND p.status IN ('pending', 'delivering', 'retry_scheduled')
            AND (p.created_at, p.id) < (d.created_at, d.id)))
  ORDER BY d.next_attempt_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE courier.deliveries d
  SET status = 'delivering', lease_owner = $1,
      lease_expires_at = now() + $3::bigint * interval '1 millisecond', updated_at = now()
  FROM due WHERE d.id = due.id
  RETURNING d.id, d.tenant_id, d.event_id, d.subscription_id, d.attempts, d.attempt_budget_base, d.ordering_key
)
SELECT c.id, c.tenant_id, c.event_id, c.subscription_id, c.attempts AS previous_attempts,
       e.event_type, e.payload::text AS payload_json, e.trace_id,
       to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS event_created_at,
       (extract(epoch FROM e.created_at) * 1000000)::bigint AS event_created_us,
       s.url, s.policy AS policy_name, s.active AS subscription_active,
       (SELECT string_agg(ss.sealed_secret, ' ' ORDER BY ss.created_at DESC)
        FROM courier.subscription_secrets ss
        WHERE ss.subscription_id = s.id AND ss.revoked_at IS NULL
          AND (ss.expires_at IS NULL OR ss.expires_at > now())) AS sealed_secrets,
       s.paused_at IS NOT NULL AS subscription_paused, c.attempt_budget_base, c.ordering_key,
       s.max_in_flight, s.rate_limit_per_second AS rate_per_second, s.rate_limit_burst AS rate_burst,
       s.tenant_id = c.tenant_id AND e.tenant_id = c.tenant_id AS tenant_consistent
FROM claimed c
JOIN courier.events e ON e.id = c.event_id
JOIN courier.subscriptions s ON s.id = c.subscription_id

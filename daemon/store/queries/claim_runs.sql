-- claim_runs: leases up to $2 due runs to worker $1 for $3 ms, of the tenants
-- in $4 (empty: all). $5: policies whose runs also execute while their
-- connection's health is degraded. Claimed: runs whose connection can run
-- them now, and runs that never can (unknown, retired or foreign connection)
-- so they are dead-lettered as poison. Runs of a pending, degraded or
-- unhealthy connection stay waiting. Each comes back with its connection and
-- the active credential version (c_* columns, NULL when there is none).
-- provider_wait_ms: a run of a connection whose registered provider has a
-- rate-limit profile takes one token of that provider's shared budget here
-- (courier.take_provider_token, 70_providers.sql); > 0: there was none, the
-- run goes back to wait that long.
WITH due AS (
  SELECT r.id FROM courier.runs r
  LEFT JOIN courier.connections c ON c.id = r.connection_id
  WHERE r.status = 'pending' AND r.next_attempt_at <= now()
    AND (cardinality($4::text[]) = 0 OR r.tenant_id = ANY ($4::text[]))
    AND (c.id IS NULL OR c.status = 'retired' OR c.tenant_id <> r.tenant_id
         OR (c.status = 'active' AND (c.health IN ('healthy', 'unknown')
                                      OR (c.health = 'degraded' AND c.policy = ANY ($5::text[])))))
  ORDER BY r.next_attempt_at
  LIMIT $2
  FOR UPDATE OF r SKIP LOCKED
), claimed AS (
  UPDATE courier.runs r
  SET status = 'running', lease_owner = $1, lease_expires_at = now() + $3::bigint * interval '1 millisecond',
      started_at = coalesce(r.started_at, now()), updated_at = now()
  FROM due WHERE r.id = due.id
  RETURNING r.*
)
SELECT cl.id, cl.tenant_id, cl.connection_id, cl.operation, cl.method, cl.path, cl.headers::text AS headers_json,
       cl.body, cl.idempotency_key, cl.external_ref_pointer, cl.trace_id, cl.last_error_code,
       cl.attempts AS previous_attempts, cl.rate_limited_attempts, cl.attempt_budget_base,
       c.id IS NOT NULL AS connection_found,
       c.id AS c_id, c.tenant_id AS c_tenant_id, c.status AS c_status, c.base_url AS c_base_url,
       c.auth_mode AS c_auth_mode, c.api_key_header AS c_api_key_header, c.token_url AS c_token_url,
       c.client_id AS c_client_id, c.scopes AS c_scopes, c.policy AS c_policy_name,
       c.max_in_flight AS c_max_in_flight, c.rate_limit_per_second AS c_rate_per_second,
       c.rate_limit_burst AS c_rate_burst, c.credential_id AS c_credential_id, v.version AS c_credential_version,
       v.sealed_secret AS c_sealed_secret,
       CASE WHEN c.health_check_path IS NOT NULL THEN c.health_check_method END AS c_health_check_method,
       c.health_check_path AS c_health_check_path, c.health_check_expected_status AS c_health_check_expected_status,
       CASE WHEN p.rate_limit_per_second IS NOT NULL AND c.tenant_id = cl.tenant_id AND c.status = 'active'
            THEN courier.take_provider_token(p.id) ELSE 0 END AS provider_wait_ms,
       p.key AS provider_key
FROM claimed cl
LEFT JOIN courier.connections c ON c.id = cl.connection_id
LEFT JOIN courier.providers p ON p.id = c.provider_id
LEFT JOIN courier.credential_versions v ON v.credential_id = c.credential_id AND v.status = 'active'

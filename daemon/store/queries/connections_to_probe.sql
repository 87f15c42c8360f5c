-- connections_to_probe: connections in use (active or degraded) with a health
-- check, the longest unchecked first, each with its active credential version
-- and how long since its last check (-1: never).
SELECT c.id AS c_id, c.tenant_id AS c_tenant_id, c.status AS c_status, c.base_url AS c_base_url,
       c.auth_mode AS c_auth_mode, c.api_key_header AS c_api_key_header, c.token_url AS c_token_url,
       c.client_id AS c_client_id, c.scopes AS c_scopes, c.policy AS c_policy_name,
       c.max_in_flight AS c_max_in_flight, c.rate_limit_per_second AS c_rate_per_second,
       c.rate_limit_burst AS c_rate_burst, c.credential_id AS c_credential_id, v.version AS c_credential_version,
       v.sealed_secret AS c_sealed_secret, c.health_check_method AS c_health_check_method,
       c.health_check_path AS c_health_check_path, c.health_check_expected_status AS c_health_check_expected_status,
       coalesce((extract(epoch FROM now() - c.last_checked_at) * 1000)::bigint, -1) AS since_last_check_ms
FROM courier.connections c
LEFT JOIN courier.credential_versions v ON v.credential_id = c.credential_id AND v.status = 'active'
WHERE c.status IN ('active', 'degraded') AND c.health_check_path IS NOT NULL
ORDER BY c.last_checked_at NULLS FIRST
LIMIT 1000

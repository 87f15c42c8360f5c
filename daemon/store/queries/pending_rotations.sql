-- pending_rotations: credential versions waiting for their verification call,
-- each with one connection using the credential (one with a health check
-- first), read with the CANDIDATE version's secret (c_* columns NULL when no
-- connection uses it: the version is promoted unverified).
SELECT v.id AS version_id, v.version, v.credential_id, cr.tenant_id, c.id IS NOT NULL AS has_connection,
       c.id AS c_id, c.tenant_id AS c_tenant_id, c.status AS c_status, c.base_url AS c_base_url,
       c.auth_mode AS c_auth_mode, c.api_key_header AS c_api_key_header, c.token_url AS c_token_url,
       c.client_id AS c_client_id, c.scopes AS c_scopes, c.policy AS c_policy_name,
       c.max_in_flight AS c_max_in_flight, c.rate_limit_per_second AS c_rate_per_second,
       c.rate_limit_burst AS c_rate_burst, c.credential_id AS c_credential_id, v.version AS c_credential_version,
       v.sealed_secret AS c_sealed_secret,
       CASE WHEN c.health_check_path IS NOT NULL THEN c.health_check_method END AS c_health_check_method,
       c.health_check_path AS c_health_check_path, c.health_check_expected_status AS c_health_check_expected_status
FROM courier.credential_versions v
JOIN courier.credentials cr ON cr.id = v.credential_id
LEFT JOIN LATERAL (
  SELECT * FROM courier.connections x
  WHERE x.credential_id = v.credential_id AND x.status <> 'retired'
  ORDER BY (x.health_check_path IS NULL), x.created_at
  LIMIT 1) c ON true
WHERE v.status = 'rotating'
ORDER BY v.created_at
LIMIT 100

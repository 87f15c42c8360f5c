// What the integration topics (connections, credentials, runs, status) share
// on the SQL side: the columns of a connection and how they map onto
// ConnectionInfo, and the credential check of a new connection. Internal to
// daemon/store/admin/.
#pragma once

#include <string>
#include <vector>

#include "store/admin/connections.hpp"
#include "store/admin/impl.hpp"

namespace pgcourier::store::admin {

// courier.connection_health h: what the courier_operator role may read.
inline const std::string kConnectionHealthColumns =
    "h.id, h.tenant_id, h.provider, h.base_url, h.auth_mode, h.status, h.status_reason, h.health, "
    "h.consecutive_probe_failures, date_trunc('second', h.last_checked_at)::text AS last_checked_at, "
    "h.last_health_error, h.credential_id, h.credential_version, "
    "date_trunc('second', h.credential_expires_at)::text AS credential_expires_at, h.runs_waiting, h.open_failures ";

inline const pg::RowMapping<ConnectionInfo> kConnectionHealth = {
    {"id", &ConnectionInfo::id},
    {"tenant_id", &ConnectionInfo::tenant_id},
    {"provider", &ConnectionInfo::provider},
    {"base_url", &ConnectionInfo::base_url},
    {"auth_mode", &ConnectionInfo::auth_mode},
    {"status", &ConnectionInfo::status},
    {"status_reason", &ConnectionInfo::status_reason},
    {"health", &ConnectionInfo::health},
    {"consecutive_probe_failures", &ConnectionInfo::consecutive_probe_failures},
    {"last_checked_at", &ConnectionInfo::last_checked_at},
    {"last_health_error", &ConnectionInfo::last_health_error},
    {"credential_id", &ConnectionInfo::credential_id},
    {"credential_version", &ConnectionInfo::credential_version},
    {"credential_expires_at", &ConnectionInfo::credential_expires_at},
    {"runs_waiting", &ConnectionInfo::runs_waiting},
    {"open_failures", &ConnectionInfo::open_failures},
};

// courier.connections c joined with its health h; callers add WHERE and ORDER BY.
inline const std::string kConnections =
    "SELECT " + kConnectionHealthColumns +
    ", c.provider_id, c.api_key_header, c.token_url, c.client_id, c.scopes, "
    "c.health_check_method || ' ' || c.health_check_path AS health_check, "
    "c.health_check_expected_status AS expected_status, c.policy, c.max_in_flight, c.rate_limit_per_second, "
    "c.rate_limit_burst, date_trunc('second', c.created_at)::text AS created_at, "
    "date_trunc('second', c.updated_at)::text AS updated_at "
    "FROM courier.connections c JOIN courier.connection_health h ON h.id = c.id ";

inline const pg::RowMapping<ConnectionInfo> kConnectionSettings = {
    {"provider_id", &ConnectionInfo::provider_id},
    {"api_key_header", &ConnectionInfo::api_key_header},
    {"token_url", &ConnectionInfo::token_url},
    {"client_id", &ConnectionInfo::client_id},
    {"scopes", &ConnectionInfo::scopes},
    {"health_check", &ConnectionInfo::health_check},
    {"expected_status", &ConnectionInfo::expected_status},
    {"policy", &ConnectionInfo::policy},
    {"max_in_flight", &ConnectionInfo::max_in_flight},
    {"rate_limit_per_second", &ConnectionInfo::rate_limit_per_second},
    {"rate_limit_burst", &ConnectionInfo::rate_limit_burst},
    {"created_at", &ConnectionInfo::created_at},
    {"updated_at", &ConnectionInfo::updated_at},
};

// Every row of a kConnections query.
inline std::vector<ConnectionInfo> ReadConnections(const pqxx::result& rows) {
  auto out = kConnectionHealth.ReadAll(rows);
  for (pqxx::result::size_type i = 0; i < rows.size(); ++i) kConnectionSettings.Fill(rows[i], out[i]);
  return out;
}

}  // namespace pgcourier::store::admin

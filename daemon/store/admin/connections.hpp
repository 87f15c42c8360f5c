// admin::Connections: the connections of integration runs
// (sql/schema/40_integrations.sql) for the operator: create, list, show,
// retire, activate. Also what the other integration topics share:
// ConnectionInfo. Borrows an admin::Connection; not thread-safe. Throws
// StoreError (a URL or tenant refused by 50_management.sql's triggers keeps
// its SQLSTATE 22023).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

// A row of courier.connections; empty strings are NULL.
struct NewConnection {
  std::string id;  // empty: generated
  std::string tenant_id;
  std::string provider;
  std::string base_url;
  std::string auth_mode = "none";
  std::string credential_id;
  std::string api_key_header;
  std::string token_url;
  std::string client_id;
  std::string scopes;
  std::string health_check_method = "GET";
  std::string health_check_path;       // empty: never probed
  std::optional<int> expected_status;  // nullopt: any 2xx
  std::string policy = "default";
  std::string status = "active";
  std::optional<double> rate_limit_per_second;
  std::optional<int> rate_limit_burst;
  std::optional<int> max_in_flight;
};

// A connection with its health (courier.connection_health). The settings
// after runs_waiting/open_failures are read from courier.connections, except
// by status (which works as courier_operator: the view only).
struct ConnectionInfo {
  std::string id;
  std::string tenant_id;
  std::string provider;
  std::string provider_id;  // its registered provider (70_providers.sql); empty: unlinked. Settings only.
  std::string base_url;
  std::string auth_mode;
  std::string status;
  std::string status_reason;
  std::string health;
  int consecutive_probe_failures = 0;
  std::string last_checked_at;
  std::string last_health_error;
  std::string credential_id;
  std::optional<int> credential_version;  // the active one
  std::string credential_expires_at;
  long long runs_waiting = 0;  // pending runs
  long long open_failures = 0;
  std::string api_key_header;
  std::string token_url;
  std::string client_id;
  std::string scopes;
  std::string health_check;  // "GET /health"; empty: never probed
  std::optional<int> expected_status;  // nullopt: any 2xx
  std::string policy;
  std::optional<int> max_in_flight;
  std::optional<double> rate_limit_per_second;
  std::optional<int> rate_limit_burst;
  std::string created_at;
  std::string updated_at;
};

// A connection's status before an operator changed it, and its pending runs.
struct ConnectionChange {
  std::string previous_status;
  long long pending_runs = 0;
};

class Connections {
 public:
  explicit Connections(Connection& connection) : connection_(connection) {}

  // courier.create_connection: the credential must exist, be the
  // connection's tenant's and not be revoked (else a StoreError with the
  // database's message). The new id.
  std::string Create(const NewConnection& connection);
  std::vector<ConnectionInfo> List(const std::string& tenant_id);  // empty tenant: all
  std::optional<ConnectionInfo> Show(const std::string& id);
  // Retire: from any status. Activate: from pending or degraded, clearing the
  // reason; a retired connection stays retired. nullopt: no such connection.
  std::optional<ConnectionChange> Retire(const std::string& id);
  std::optional<ConnectionChange> Activate(const std::string& id);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin

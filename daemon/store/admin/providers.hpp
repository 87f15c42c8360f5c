// admin::Providers: the provider registry and its API clients
// (sql/schema/70_providers.sql) for the operator: create, list, show, and
// status changes. Every write goes through the registry's management
// functions (courier.create_provider, set_provider_status,
// create_api_client, set_api_client_status), so the CLI meets the same
// invariants as SQL callers; a refusal keeps the server's SQLSTATE and
// message. `acting_tenant` (empty: an administrator) scopes every call to
// that tenant's providers and the global ones. Borrows an admin::Connection;
// not thread-safe. Throws StoreError.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

// Arguments of courier.create_provider; empty strings and nullopt: the function's defaults.
struct NewProvider {
  std::string id;
  std::string tenant_id;  // empty: global
  std::string key;
  std::string name;
  std::string category;
  std::string auth_model;
  std::string base_url;
  std::vector<std::string> capabilities;
  std::optional<double> rate_limit_per_second;
  std::optional<int> rate_limit_burst;
};

// A row of courier.provider_registry.
struct ProviderInfo {
  std::string id;
  std::string tenant_id;  // empty: global
  std::string key;
  std::string name;
  std::string category;
  std::string auth_model;
  std::string base_url;  // redacted
  std::string status;
  std::string status_reason;
  std::vector<std::string> capabilities;
  std::optional<double> rate_limit_per_second;
  std::optional<int> rate_limit_burst;
  long long api_clients = 0;
  long long active_api_clients = 0;
  long long connections = 0;
  std::string created_at;
  std::string updated_at;
};

struct ApiClientInfo {
  std::string id;
  std::string provider_id;
  std::string provider_key;
  std::string tenant_id;  // the provider's; empty: global
  std::string name;
  std::string version;
  std::vector<std::string> capabilities;
  std::string status;
  std::string created_at;
  std::string updated_at;
};

struct ProviderDetail {
  ProviderInfo provider;
  std::vector<ApiClientInfo> api_clients;
};

class Providers {
 public:
  explicit Providers(Connection& connection) : connection_(connection) {}

  std::string Create(const NewProvider& p);
  // The tenant's providers and the global ones (all, for an empty tenant), by scope and key.
  std::vector<ProviderInfo> List(const std::string& tenant_id);
  // By id, or by key in the acting tenant's scope. Throws (P0002) when there is none.
  ProviderDetail Show(const std::string& provider, const std::string& acting_tenant);
  // Returns the status before.
  std::string SetStatus(const std::string& provider, const std::string& status, const std::string& reason,
                        const std::string& acting_tenant);

  // capabilities empty: the provider's; status "registered" or "active".
  std::string CreateApiClient(const std::string& provider, const std::string& name, const std::string& version,
                              const std::vector<std::string>& capabilities, const std::string& status,
                              const std::string& acting_tenant, const std::string& id);
  // Of one provider (id or key), or of all the tenant's (and global) providers when provider is empty.
  std::vector<ApiClientInfo> ListApiClients(const std::string& provider, const std::string& tenant_id);
  std::string SetApiClientStatus(const std::string& api_client, const std::string& status,
                                 const std::string& acting_tenant);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin

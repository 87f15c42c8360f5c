#include "store/admin/providers.hpp"

#include <iomanip>
#include <sstream>

#include "store/admin/impl.hpp"
#include "store/pg/arrays.hpp"

namespace pgcourier::store::admin {
namespace {

std::string Exact(double value) {
  std::ostringstream out;
  out << std::setprecision(17) << value;
  return out.str();
}

std::string TextArray(const std::vector<std::string>& items) {
  pg::ArrayBuilder array;
  for (const auto& item : items) array.AddText(item);
  return array.Finish();
}

const std::string kProviderColumns =
    "SELECT r.id, r.tenant_id, r.key, r.name, r.category, r.auth_model, r.base_url, r.status, r.status_reason, "
    "r.capabilities, r.rate_limit_per_second, r.rate_limit_burst, r.api_clients, r.active_api_clients, "
    "r.connections, date_trunc('second', r.created_at)::text AS created_at, "
    "date_trunc('second', r.updated_at)::text AS updated_at FROM courier.provider_registry r ";

const pg::RowMapping<ProviderInfo> kProvider = {
    {"id", &ProviderInfo::id},
    {"tenant_id", &ProviderInfo::tenant_id},
    {"key", &ProviderInfo::key},
    {"name", &ProviderInfo::name},
    {"category", &ProviderInfo::category},
    {"auth_model", &ProviderInfo::auth_model},
    {"base_url", &ProviderInfo::base_url},
    {"status", &ProviderInfo::status},
    {"status_reason", &ProviderInfo::status_reason},
    {"capabilities", &ProviderInfo::capabilities},
    {"rate_limit_per_second", &ProviderInfo::rate_limit_per_second},
    {"rate_limit_burst", &ProviderInfo::rate_limit_burst},
    {"api_clients", &ProviderInfo::api_clients},
    {"active_api_clients", &ProviderInfo::active_api_clients},
    {"connections", &ProviderInfo::connections},
    {"created_at", &ProviderInfo::created_at},
    {"updated_at", &ProviderInfo::updated_at},
};

const std::string kApiClientColumns =
    "SELECT a.id, a.provider_id, p.key AS provider_key, a.tenant_id, a.name, a.version, a.capabilities, a.status, "
    "date_trunc('second', a.created_at)::text AS created_at, date_trunc('second', a.updated_at)::text AS updated_at "
    "FROM courier.api_clients a JOIN courier.provider_registry p ON p.id = a.provider_id ";

const pg::RowMapping<ApiClientInfo> kApiClient = {
    {"id", &ApiClientInfo::id},
    {"provider_id", &ApiClientInfo::provider_id},
    {"provider_key", &ApiClientInfo::provider_key},
    {"tenant_id", &ApiClientInfo::tenant_id},
    {"name", &ApiClientInfo::name},
    {"version", &ApiClientInfo::version},
    {"capabilities", &ApiClientInfo::capabilities},
    {"status", &ApiClientInfo::status},
    {"created_at", &ApiClientInfo::created_at},
    {"updated_at", &ApiClientInfo::updated_at},
};

// The provider's id, by id or by key in the acting tenant's scope (courier.find_provider raises when none).
std::string FindProvider(pqxx::transaction_base& txn, const std::string& provider, const std::string& acting_tenant) {
  return Text(
      txn.exec_params1("SELECT (courier.find_provider($1, nullif($2, ''))).id AS id", provider, acting_tenant)["id"]);
}

}  // namespace

std::string Providers::Create(const NewProvider& p) {
  return pg::Translate("create provider", [&] {
    pqxx::work txn(connection_.impl().conn);
    NamedCall call("courier.create_provider");
    call.Arg("key", p.key)
        .ArgUnlessEmpty("tenant_id", p.tenant_id)
        .ArgUnlessEmpty("category", p.category)
        .ArgUnlessEmpty("auth_model", p.auth_model)
        .ArgUnlessEmpty("base_url", p.base_url)
        .Arg("capabilities", TextArray(p.capabilities), "text[]")
        .ArgUnlessEmpty("name", p.name)
        .ArgUnlessEmpty("id", p.id);
    if (p.rate_limit_per_second) call.Arg("rate_limit_per_second", Exact(*p.rate_limit_per_second), "float8");
    if (p.rate_limit_burst) call.Arg("rate_limit_burst", std::to_string(*p.rate_limit_burst), "int");
    const auto row = call.Exec1(txn, "SELECT ");
    txn.commit();
    return Text(row[0]);
  });
}

std::vector<ProviderInfo> Providers::List(const std::string& tenant_id) {
  return pg::Translate("list providers", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kProvider.ReadAll(txn.exec_params(
        kProviderColumns +
            "WHERE $1 = '' OR r.tenant_id = $1 OR r.tenant_id IS NULL ORDER BY r.tenant_id NULLS FIRST, r.key",
        tenant_id));
  });
}

ProviderDetail Providers::Show(const std::string& provider, const std::string& acting_tenant) {
  return pg::Translate("show provider", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    const std::string id = FindProvider(txn, provider, acting_tenant);
    ProviderDetail out;
    out.provider = kProvider.Read(txn.exec_params1(kProviderColumns + "WHERE r.id = $1", id));
    out.api_clients = kApiClient.ReadAll(
        txn.exec_params(kApiClientColumns + "WHERE a.provider_id = $1 ORDER BY a.name, a.created_at", id));
    return out;
  });
}

std::string Providers::SetStatus(const std::string& provider, const std::string& status, const std::string& reason,
                                 const std::string& acting_tenant) {
  return pg::Translate("set provider status", [&] {
    pqxx::work txn(connection_.impl().conn);
    const auto row = txn.exec_params1("SELECT courier.set_provider_status($1, $2, nullif($3, ''), nullif($4, ''))",
                                      provider, status, reason, acting_tenant);
    txn.commit();
    return Text(row[0]);
  });
}

std::string Providers::CreateApiClient(const std::string& provider, const std::string& name, const std::string& version,
                                       const std::vector<std::string>& capabilities, const std::string& status,
                                       const std::string& acting_tenant, const std::string& id) {
  return pg::Translate("create API client", [&] {
    pqxx::work txn(connection_.impl().conn);
    NamedCall call("courier.create_api_client");
    call.Arg("provider", provider).Arg("name", name).Arg("version", version);
    if (!capabilities.empty()) call.Arg("capabilities", TextArray(capabilities), "text[]");
    call.ArgUnlessEmpty("status", status).ArgUnlessEmpty("acting_tenant", acting_tenant).ArgUnlessEmpty("id", id);
    const auto row = call.Exec1(txn, "SELECT ");
    txn.commit();
    return Text(row[0]);
  });
}

std::vector<ApiClientInfo> Providers::ListApiClients(const std::string& provider, const std::string& tenant_id) {
  return pg::Translate("list API clients", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    if (!provider.empty()) {
      const std::string id = FindProvider(txn, provider, tenant_id);
      return kApiClient.ReadAll(
          txn.exec_params(kApiClientColumns + "WHERE a.provider_id = $1 ORDER BY a.name, a.created_at", id));
    }
    return kApiClient.ReadAll(txn.exec_params(
        kApiClientColumns +
            "WHERE $1 = '' OR a.tenant_id = $1 OR a.tenant_id IS NULL ORDER BY p.key, a.name, a.created_at",
        tenant_id));
  });
}

std::string Providers::SetApiClientStatus(const std::string& api_client, const std::string& status,
                                          const std::string& acting_tenant) {
  return pg::Translate("set API client status", [&] {
    pqxx::work txn(connection_.impl().conn);
    const auto row = txn.exec_params1("SELECT courier.set_api_client_status($1, $2, nullif($3, ''))", api_client,
                                      status, acting_tenant);
    txn.commit();
    return Text(row[0]);
  });
}

}  // namespace pgcourier::store::admin

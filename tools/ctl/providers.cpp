// pgcourierctl provider ... and api-client ...: the provider registry
// (sql/schema/70_providers.sql). The invariants (an active provider needs an
// active API client, capabilities a subset, deprecated is final, ...) are the
// database's; these commands say what it refused in its own words.
// --tenant scopes every command to that tenant's providers and the global
// ones; without it, an administrator sees and changes all of them.
#include <iostream>

#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "store/admin/providers.hpp"

namespace pgcourier::ctl {
namespace {

using store::admin::ApiClientInfo;
using store::admin::ProviderInfo;
using store::admin::Providers;

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

std::string Scope(const std::string& tenant_id) { return tenant_id.empty() ? "(global)" : tenant_id; }

std::string DescribeRate(const ProviderInfo& p) {
  if (!p.rate_limit_per_second) return "none";
  return FormatNumber(*p.rate_limit_per_second) + " requests/s shared by all its connections, burst " +
         (p.rate_limit_burst ? std::to_string(*p.rate_limit_burst) : std::string("= the rate"));
}

void WriteProvider(Json& json, const ProviderInfo& p) {
  json.BeginObject()
      .Field("id", p.id)
      .StringOrNull("tenant_id", p.tenant_id)
      .Field("key", p.key)
      .StringOrNull("name", p.name)
      .Field("category", p.category)
      .Field("auth_model", p.auth_model)
      .StringOrNull("base_url", p.base_url)
      .Field("status", p.status)
      .StringOrNull("status_reason", p.status_reason)
      .Strings("capabilities", p.capabilities)
      .Field("rate_limit_per_second", p.rate_limit_per_second)
      .Field("rate_limit_burst", p.rate_limit_burst)
      .Field("api_clients", p.api_clients)
      .Field("active_api_clients", p.active_api_clients)
      .Field("connections", p.connections)
      .Time("created_at", p.created_at)
      .Time("updated_at", p.updated_at);
}

void WriteApiClient(Json& json, const ApiClientInfo& a) {
  json.BeginObject()
      .Field("id", a.id)
      .Field("provider_id", a.provider_id)
      .Field("provider", a.provider_key)
      .StringOrNull("tenant_id", a.tenant_id)
      .Field("name", a.name)
      .Field("version", a.version)
      .Strings("capabilities", a.capabilities)
      .Field("status", a.status)
      .Time("created_at", a.created_at)
      .Time("updated_at", a.updated_at)
      .EndObject();
}

int ProviderCreate(const Invocation& inv) {
  store::admin::NewProvider p;
  p.id = inv.Text("id");
  p.tenant_id = inv.Text("tenant");
  p.key = inv.Text("key");
  p.name = inv.Text("name");
  p.category = inv.Text("category");
  p.auth_model = inv.Text("auth");
  p.capabilities = inv.List("capabilities");
  if (inv.Has("rate-limit")) p.rate_limit_per_second = inv.Number("rate-limit");
  if (inv.Has("burst")) p.rate_limit_burst = static_cast<int>(*inv.Int("burst"));
  if (p.rate_limit_burst && !p.rate_limit_per_second) return UsageError("--burst goes with --rate-limit");
  const Context context(inv);
  if (inv.Has("base-url")) {
    int exit_code = 0;
    const auto base_url = context.CheckUrl("base-url", inv.Text("base-url"), "default", exit_code);
    if (!base_url) return exit_code;
    p.base_url = base_url->url;
  }
  store::admin::Connection db(context.DatabaseUrl());
  std::cout << Providers(db).Create(p) << "\n";
  return 0;
}

int ProviderList(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto providers = Providers(db).List(inv.Text("tenant"));
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("providers").BeginArray();
    for (const auto& p : providers) WriteProvider(json, p), json.EndObject();
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  if (providers.empty()) {
    std::cout << "no providers\n";
    return 0;
  }
  Table table = {{"provider", "scope", "key", "category", "auth", "status", "capabilities", "clients", "connections"}};
  for (const auto& p : providers) {
    table.push_back({p.id, Scope(p.tenant_id), p.key, p.category, p.auth_model, p.status, Dash(Join(p.capabilities)),
                     std::to_string(p.active_api_clients) + "/" + std::to_string(p.api_clients) + " active",
                     std::to_string(p.connections)});
  }
  PrintTable(table);
  return 0;
}

int ProviderShow(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto detail = Providers(db).Show(inv.operand(), inv.Text("tenant"));
  const auto& p = detail.provider;
  if (inv.json()) {
    Json json(std::cout);
    WriteProvider(json, p);
    json.Key("api_clients").BeginArray();
    for (const auto& a : detail.api_clients) WriteApiClient(json, a);
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  std::cout << "provider " << p.id << "  key=" << p.key << "  scope=" << Scope(p.tenant_id) << "  " << p.status
            << (p.status_reason.empty() ? "" : ": " + p.status_reason) << "\n"
            << "  name:          " << Dash(p.name) << "\n"
            << "  category:      " << p.category << "\n"
            << "  auth model:    " << p.auth_model << "\n"
            << "  base url:      " << Dash(p.base_url) << "\n"
            << "  capabilities:  " << OrElse(Join(p.capabilities), "none") << "\n"
            << "  rate limit:    " << DescribeRate(p) << "\n"
            << "  connections:   " << p.connections << "\n"
            << "  created:       " << p.created_at << "  (updated " << p.updated_at << ")\n";
  if (detail.api_clients.empty()) {
    std::cout << "API clients: none (it becomes active only with an active one)\n";
    return 0;
  }
  std::cout << "API clients:\n";
  Table table = {{"api client", "name", "version", "status", "capabilities"}};
  for (const auto& a : detail.api_clients) {
    table.push_back({a.id, a.name, a.version, a.status, Dash(Join(a.capabilities))});
  }
  PrintTable(table, "  ");
  return 0;
}

int SetProviderStatus(const Invocation& inv, const std::string& status) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const std::string before = Providers(db).SetStatus(inv.operand(), status, inv.Text("reason"), inv.Text("tenant"));
  if (before == status) {
    std::cout << inv.operand() << " is already " << status << "\n";
  } else {
    std::cout << status << " " << inv.operand() << " (was " << before << ")\n";
  }
  return 0;
}

int ProviderActivate(const Invocation& inv) { return SetProviderStatus(inv, "active"); }
int ProviderDeprecate(const Invocation& inv) { return SetProviderStatus(inv, "deprecated"); }

int ApiClientCreate(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  std::cout << Providers(db).CreateApiClient(inv.Text("provider"), inv.Text("name"), inv.Text("client-version"),
                                             inv.List("capabilities"), inv.Flag("active") ? "active" : "registered",
                                             inv.Text("tenant"), inv.Text("id"))
            << "\n";
  return 0;
}

int ApiClientList(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto clients = Providers(db).ListApiClients(inv.Text("provider"), inv.Text("tenant"));
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("api_clients").BeginArray();
    for (const auto& a : clients) WriteApiClient(json, a);
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  if (clients.empty()) {
    std::cout << "no API clients\n";
    return 0;
  }
  Table table = {{"api client", "provider", "scope", "name", "version", "status", "capabilities"}};
  for (const auto& a : clients) {
    table.push_back(
        {a.id, a.provider_key, Scope(a.tenant_id), a.name, a.version, a.status, Dash(Join(a.capabilities))});
  }
  PrintTable(table);
  return 0;
}

int SetApiClientStatus(const Invocation& inv, const std::string& status) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const std::string before = Providers(db).SetApiClientStatus(inv.operand(), status, inv.Text("tenant"));
  if (before == status) {
    std::cout << inv.operand() << " is already " << status << "\n";
  } else {
    std::cout << status << " " << inv.operand() << " (was " << before << ")\n";
  }
  return 0;
}

int ApiClientActivate(const Invocation& inv) { return SetApiClientStatus(inv, "active"); }
int ApiClientDeprecate(const Invocation& inv) { return SetApiClientStatus(inv, "deprecated"); }

}  // namespace

std::vector<Command> ProviderCommands() {
  constexpr std::string_view kTopic = "Providers and API clients (the registry of integration runs)";
  const Option tenant_scope = {.name = "tenant",
                               .kind = Kind::kIdentifier,
                               .value_name = "TENANT",
                               .help = "act as this tenant: only its providers and the global ones"};
  const Option capabilities = {.name = "capabilities",
                               .kind = Kind::kList,
                               .value_name = "CAP,...",
                               .help = "operations runs may name, e.g. sms.send,sms.status"};
  return {
      {.topic = kTopic,
       .name = "provider create",
       .summary = "register a provider (status registered); prints its id",
       .description = "The key is unique in its scope: the tenant's (--tenant) or global (no --tenant). A connection "
                      "whose --provider is the key of an active provider of its tenant (or a global one) is linked "
                      "to it; a registered or deprecated provider accepts no new connections. Runs on a linked "
                      "connection may only name declared capabilities.",
       .options = {{.name = "key", .kind = Kind::kText, .value_name = "KEY", .help = "e.g. twilio", .required = true},
                   {.name = "tenant",
                    .kind = Kind::kIdentifier,
                    .value_name = "TENANT",
                    .help = "its tenant (default: a global provider)"},
                   {.name = "category",
                    .value_name = "CATEGORY",
                    .help = "e.g. sms, email, payments",
                    .default_value = "other"},
                   {.name = "auth",
                    .kind = Kind::kChoice,
                    .value_name = "MODEL",
                    .help = "the auth model its connections use",
                    .default_value = "none",
                    .choices = {"none", "api_key", "bearer", "basic", "oauth2_client_credentials"}},
                   {.name = "base-url", .kind = Kind::kUrl, .value_name = "URL", .help = "the API's base URL"},
                   capabilities,
                   {.name = "rate-limit",
                    .kind = Kind::kNumber,
                    .value_name = "PER_SECOND",
                    .help = "most requests per second across all its connections and all daemons",
                    .max = 1'000'000,
                    .expect = "requests per second, a number above 0 (e.g. 5 or 0.5)"},
                   {.name = "burst",
                    .kind = Kind::kInt,
                    .value_name = "N",
                    .help = "the shared bucket's size",
                    .min = 1,
                    .max = 1'000'000},
                   {.name = "name", .value_name = "NAME", .help = "a name for people"},
                   {.name = "id",
                    .kind = Kind::kIdentifier,
                    .value_name = "ID",
                    .help = "its id (default: a new prv_... id)"}},
       .example = "pgcourierctl provider create --tenant acme --key twilio --category sms --auth basic \\\n"
                  "  --capabilities sms.send,sms.status --rate-limit 10",
       .run = ProviderCreate},
      {.topic = kTopic,
       .name = "provider list",
       .summary = "providers with status, capabilities, API clients and connections",
       .options = {tenant_scope},
       .example = "pgcourierctl provider list --tenant acme --json",
       .json = true,
       .run = ProviderList},
      {.topic = kTopic,
       .name = "provider show",
       .operand = "PROVIDER",
       .summary = "one provider (by id, or by key with --tenant) and its API clients",
       .options = {tenant_scope},
       .example = "pgcourierctl provider show twilio --tenant acme",
       .json = true,
       .run = ProviderShow},
      {.topic = kTopic,
       .name = "provider activate",
       .operand = "PROVIDER",
       .summary = "make a registered provider active (it needs an active API client)",
       .options = {tenant_scope, {.name = "reason", .value_name = "TEXT", .help = "why, for the record"}},
       .example = "pgcourierctl provider activate prv_...",
       .run = ProviderActivate},
      {.topic = kTopic,
       .name = "provider deprecate",
       .operand = "PROVIDER",
       .summary = "deprecate a provider: no new connections; existing ones keep running",
       .options = {tenant_scope, {.name = "reason", .value_name = "TEXT", .help = "why, for the record"}},
       .example = "pgcourierctl provider deprecate prv_... --reason 'moved to v2'",
       .run = ProviderDeprecate},
      {.topic = kTopic,
       .name = "api-client create",
       .summary = "register an API client of a provider; prints its id",
       .description = "Name and semantic version are unique per provider; the capabilities (default: the "
                      "provider's) must be a subset of the provider's.",
       .options = {{.name = "provider",
                    .value_name = "PROVIDER",
                    .help = "its provider (id, or key with --tenant)",
                    .required = true},
                   {.name = "name", .value_name = "NAME", .help = "e.g. twilio-node", .required = true},
                   {.name = "client-version",
                    .value_name = "SEMVER",
                    .help = "its semantic version, e.g. 4.1.0",
                    .required = true},
                   capabilities,
                   {.name = "active", .kind = Kind::kFlag, .help = "start active (default: registered)"},
                   tenant_scope,
                   {.name = "id",
                    .kind = Kind::kIdentifier,
                    .value_name = "ID",
                    .help = "its id (default: a new apc_... id)"}},
       .example =
           "pgcourierctl api-client create --provider prv_... --name twilio-node --client-version 4.1.0 --active",
       .run = ApiClientCreate},
      {.topic = kTopic,
       .name = "api-client list",
       .summary = "API clients, of one provider or of all",
       .options = {{.name = "provider", .value_name = "PROVIDER", .help = "only this provider's"}, tenant_scope},
       .example = "pgcourierctl api-client list --provider prv_... --json",
       .json = true,
       .run = ApiClientList},
      {.topic = kTopic,
       .name = "api-client activate",
       .operand = "ID",
       .summary = "make a registered API client active",
       .options = {tenant_scope},
       .example = "pgcourierctl api-client activate apc_...",
       .run = ApiClientActivate},
      {.topic = kTopic,
       .name = "api-client deprecate",
       .operand = "ID",
       .summary = "deprecate an API client; the provider's last active one deprecates the provider",
       .options = {tenant_scope},
       .example = "pgcourierctl api-client deprecate apc_...",
       .run = ApiClientDeprecate},
  };
}

}  // namespace pgcourier::ctl

// pgcourierctl api-token ... and ingress-source ...: pgcourier-gateway's API
// tokens and inbound sources (sql/schema/80_gateway.sql). A token is printed
// once by create; the database keeps only its SHA-256. A source's secret is
// sealed with the master key, bound to the source id.
#include <iostream>

#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "store/admin/api_tokens.hpp"
#include "store/admin/ingress_sources.hpp"

namespace pgcourier::ctl {
namespace {

int ApiTokenCreate(const Invocation& inv) {
  const bool operator_token = inv.Flag("operator");
  if (operator_token == inv.Has("tenant")) {
    return UsageError("api-token create needs --tenant TENANT (a tenant's token) or --operator (every tenant's)");
  }
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto created = store::admin::ApiTokens(db).Create(inv.Text("tenant"), inv.Text("name"), operator_token);
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Field("id", created.id).Field("token", created.token).EndObject();
    json.Finish();
    return 0;
  }
  std::cout << created.id << "\n" << created.token << "\n";
  std::cerr << "pgcourierctl: the token is shown only now; the database keeps only its SHA-256\n";
  return 0;
}

int ApiTokenList(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto tokens = store::admin::ApiTokens(db).List();
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("tokens").BeginArray();
    for (const auto& t : tokens) {
      json.BeginObject()
          .Field("id", t.id)
          .StringOrNull("tenant_id", t.tenant_id)
          .Field("name", t.name)
          .Time("created_at", t.created_at)
          .Time("revoked_at", t.revoked_at)
          .Time("last_used_at", t.last_used_at)
          .EndObject();
    }
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  Table rows = {{"ID", "TENANT", "NAME", "CREATED", "LAST USED", "REVOKED"}};
  for (const auto& t : tokens) {
    rows.push_back({t.id, OrElse(t.tenant_id, "(operator)"), Dash(t.name), t.created_at,
                    OrElse(t.last_used_at, "never"), Dash(t.revoked_at)});
  }
  PrintTable(rows);
  return 0;
}

int ApiTokenRevoke(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const bool revoked = store::admin::ApiTokens(db).Revoke(inv.operand());
  std::cout << (revoked ? "revoked " : "already revoked: ") << inv.operand() << "\n";
  return 0;
}

int IngressSourceCreate(const Invocation& inv) {
  const auto secret = ReadSecretFile(inv.Text("secret-file"));
  if (!secret) return 1;
  const Context context(inv);
  const auto box = context.MasterKey();
  if (!box) return 1;
  store::admin::Connection db(context.DatabaseUrl());
  store::admin::IngressSources sources(db);
  store::admin::NewIngressSource s;
  s.id = sources.NewId();
  s.tenant_id = inv.Text("tenant");
  s.scheme = inv.Text("scheme");
  s.event_type = inv.Text("event-type");
  s.tolerance_seconds = static_cast<int>(inv.Duration("tolerance")->count());
  if (s.tolerance_seconds < 1 || s.tolerance_seconds > 86400) return UsageError("--tolerance: 1s to 24h");
  s.sealed_secret = box->Seal(*secret, s.id);
  std::cout << sources.Create(s) << "\n";
  return 0;
}

int IngressSourceList(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto sources = store::admin::IngressSources(db).List();
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("sources").BeginArray();
    for (const auto& s : sources) {
      json.BeginObject()
          .Field("id", s.id)
          .Field("tenant_id", s.tenant_id)
          .Field("scheme", s.scheme)
          .StringOrNull("event_type", s.event_type)
          .Field("tolerance_seconds", s.tolerance_seconds)
          .Time("created_at", s.created_at)
          .Field("accepted", s.accepted)
          .Field("refused", s.refused)
          .EndObject();
    }
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  Table rows = {{"ID", "TENANT", "SCHEME", "EVENT TYPE", "ACCEPTED", "REFUSED"}};
  for (const auto& s : sources) {
    rows.push_back({s.id, s.tenant_id, s.scheme, OrElse(s.event_type, "(from the request)"),
                    std::to_string(s.accepted), std::to_string(s.refused)});
  }
  PrintTable(rows);
  return 0;
}

}  // namespace

std::vector<Command> GatewayCommands() {
  constexpr std::string_view kTopic = "Gateway (pgcourier-gateway)";
  return {
      {.topic = kTopic,
       .name = "api-token create",
       .summary = "create an API token for one tenant or for the operator; prints its id and the token once",
       .description = "A tenant token sees and changes only its tenant's subscriptions, events and deliveries; an "
                      "operator token (--operator) sees every tenant and signs in to the console. Only the token's "
                      "SHA-256 is stored: keep the printed token, it is not shown again.",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "the token's tenant"},
                   {.name = "operator", .kind = Kind::kFlag, .help = "a token for every tenant (the console's)"},
                   {.name = "name", .value_name = "NAME", .help = "what the token is for (shown by list)"}},
       .example = "pgcourierctl api-token create --tenant acme --name billing-backend\n"
                  "pgcourierctl api-token create --operator --name console",
       .json = true,
       .run = ApiTokenCreate},
      {.topic = kTopic,
       .name = "api-token list",
       .summary = "list API tokens (never the tokens themselves)",
       .example = "pgcourierctl api-token list --json",
       .json = true,
       .run = ApiTokenList},
      {.topic = kTopic,
       .name = "api-token revoke",
       .operand = "ID",
       .summary = "revoke an API token; the gateway refuses it from its next request",
       .example = "pgcourierctl api-token revoke tok_0123",
       .run = ApiTokenRevoke},
      {.topic = kTopic,
       .name = "ingress-source create",
       .summary = "create an inbound source (POST /ingress/ID on the gateway); prints its id",
       .description = "Requests to the source are verified with the scheme's signature and timestamp window before "
                      "anything is stored; accepted ones become events of the tenant (idempotent on the provider's "
                      "delivery id), refused ones are recorded with their reason. The secret is sealed with the "
                      "master key. standard-webhooks takes a whsec_ secret; github, stripe and hmac-sha256 the "
                      "secret as the provider shows it.",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "its tenant",
                    .required = true},
                   {.name = "scheme", .kind = Kind::kChoice, .value_name = "SCHEME", .help = "how requests are signed",
                    .required = true, .choices = {"standard-webhooks", "github", "stripe", "hmac-sha256"}},
                   {.name = "secret-file", .value_name = "FILE", .help = "the signing secret alone (or /dev/stdin)",
                    .required = true},
                   {.name = "event-type", .value_name = "TYPE",
                    .help = "the events' type (default: from the request: its type, or github.<X-GitHub-Event>)"},
                   {.name = "tolerance", .kind = Kind::kDuration, .value_name = "DURATION",
                    .help = "how far a signed timestamp may be from now", .default_value = "5m"}},
       .example = "pgcourierctl ingress-source create --tenant acme --scheme github --secret-file gh-secret.txt",
       .run = IngressSourceCreate},
      {.topic = kTopic,
       .name = "ingress-source list",
       .summary = "list inbound sources with their accepted and refused requests",
       .example = "pgcourierctl ingress-source list --json",
       .json = true,
       .run = IngressSourceList},
  };
}

}  // namespace pgcourier::ctl

// pgcourierctl api-token ...: the API tokens of pgcourier-gateway
// (sql/schema/60_gateway.sql). A token is printed once by create; the
// database keeps only its SHA-256.
#include <iostream>

#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "store/admin/api_tokens.hpp"

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
  };
}

}  // namespace pgcourier::ctl

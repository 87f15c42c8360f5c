// pgcourierctl connection ... and credential ...: the connections of
// integration runs and their sealed, versioned credentials.
#include <algorithm>
#include <cctype>
#include <iostream>

#include "base/file.hpp"
#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "retry/text.hpp"
#include "store/admin/connections.hpp"
#include "store/admin/credentials.hpp"
#include "store/admin/rotation_policies.hpp"

namespace pgcourier::ctl {
namespace {

using store::admin::ConnectionInfo;

// A credential is a key, a token or a client secret: a few hundred bytes at most.
constexpr std::size_t kMaxSecretFileBytes = std::size_t{64} * 1024;

bool HasControl(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool IsPath(std::string_view path) {
  return !path.empty() && path[0] == '/' && path.find(' ') == std::string_view::npos && !HasControl(path);
}

// "GET", "get": an HTTP method, upper-cased; nullopt when it is not letters.
std::optional<std::string> HttpMethod(std::string_view text) {
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
  return out;
}

// --auth and what goes with it. Returns what is wrong, or "".
std::string ReadAuth(const Invocation& inv, store::admin::NewConnection& c) {
  c.auth_mode = inv.Text("auth");
  c.credential_id = inv.Text("credential");
  c.api_key_header = inv.Text("api-key-header");
  c.token_url = inv.Text("token-url");
  c.client_id = inv.Text("client-id");
  c.scopes = inv.Text("scopes");
  const bool oauth2 = c.auth_mode == "oauth2_client_credentials";
  if (c.auth_mode == "none" && !c.credential_id.empty()) return "--credential needs an --auth mode other than none";
  if (c.auth_mode != "none" && c.credential_id.empty()) return "--auth " + c.auth_mode + " needs --credential CRED_ID";
  if (!c.api_key_header.empty() && c.auth_mode != "api_key") return "--api-key-header goes with --auth api_key";
  if (!oauth2 && (inv.Has("token-url") || inv.Has("client-id") || inv.Has("scopes"))) {
    return "--token-url, --client-id and --scopes go with --auth oauth2_client_credentials";
  }
  if (oauth2 && (c.token_url.empty() || c.client_id.empty())) {
    return "--auth oauth2_client_credentials needs --token-url and --client-id";
  }
  return "";
}

// The health check, status and limits. Returns what is wrong, or "".
std::string ReadSettings(const Invocation& inv, store::admin::NewConnection& c) {
  if (inv.Has("health-check")) {
    const std::string check = inv.Text("health-check");
    const auto space = check.find(' ');
    const auto method = HttpMethod(std::string_view(check).substr(0, space));
    if (space == std::string::npos || !method || !IsPath(check.substr(space + 1))) {
      return "--health-check takes 'METHOD /path', e.g. 'GET /health'";
    }
    c.health_check_method = *method;
    c.health_check_path = check.substr(space + 1);
  }
  c.status = inv.Text("status");
  if (inv.Has("rate-limit")) c.rate_limit_per_second = inv.Number("rate-limit");
  if (inv.Has("expect-status")) c.expected_status = static_cast<int>(*inv.Int("expect-status"));
  if (inv.Has("burst")) c.rate_limit_burst = static_cast<int>(*inv.Int("burst"));
  if (inv.Has("max-in-flight")) c.max_in_flight = static_cast<int>(*inv.Int("max-in-flight"));
  if (c.expected_status && c.health_check_path.empty()) return "--expect-status goes with --health-check";
  return "";
}

int NoConnection(const std::string& id) { return Fail("no connection " + id); }

int ConnectionCreate(const Invocation& inv) {
  store::admin::NewConnection c;
  c.id = inv.Text("id");
  c.tenant_id = inv.Text("tenant");
  c.provider = inv.Text("provider");
  c.policy = inv.Text("policy");
  std::string problem = ReadAuth(inv, c);
  if (problem.empty()) problem = ReadSettings(inv, c);
  if (!problem.empty()) return UsageError(problem);
  const Context context(inv);
  int exit_code = 0;
  const auto base_url = context.CheckUrl("base-url", inv.Text("base-url"), c.policy, exit_code);
  if (!base_url) return exit_code;
  c.base_url = base_url->url;
  if (!c.token_url.empty()) {
    const auto token_url = context.CheckUrl("token-url", c.token_url, c.policy, exit_code);
    if (!token_url) return exit_code;
    c.token_url = token_url->url;
  }
  if (!context.CheckPolicy(c.policy)) return 1;
  store::admin::Connection db(context.DatabaseUrl());
  std::cout << store::admin::Connections(db).Create(c) << "\n";
  return 0;
}

std::string LastChecked(const ConnectionInfo& c) { return OrElse(c.last_checked_at, "never"); }

void WriteConnections(Json& json, const std::vector<ConnectionInfo>& connections) {
  json.Key("connections").BeginArray();
  for (const auto& c : connections) WriteConnection(json, c, true);
  json.EndArray();
}

int ConnectionList(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto connections = store::admin::Connections(db).List(inv.Text("tenant"));
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject();
    WriteConnections(json, connections);
    json.EndObject();
    json.Finish();
    return 0;
  }
  if (connections.empty()) {
    std::cout << "no connections\n";
    return 0;
  }
  Table table = {
      {"connection", "tenant", "provider", "base url", "auth", "status", "health", "last checked", "runs waiting"}};
  for (const auto& c : connections) {
    table.push_back({c.id, c.tenant_id, c.provider, retry::RedactUrls(c.base_url), c.auth_mode, c.status, c.health,
                     LastChecked(c), std::to_string(c.runs_waiting)});
  }
  PrintTable(table);
  return 0;
}

// "bearer with credential cred_x version 1, expires T", "none".
std::string DescribeAuth(const ConnectionInfo& c) {
  if (c.credential_id.empty()) return c.auth_mode;
  std::string out = c.auth_mode + " with credential " + c.credential_id + " version " + Dash(c.credential_version);
  return out + (c.credential_expires_at.empty() ? ", does not expire" : ", expires " + c.credential_expires_at);
}

std::string DescribeLimits(const ConnectionInfo& c) {
  std::string out;
  if (c.rate_limit_per_second) out += FormatNumber(*c.rate_limit_per_second) + " requests/s, ";
  if (c.rate_limit_burst) out += "burst " + std::to_string(*c.rate_limit_burst) + ", ";
  if (c.max_in_flight) out += std::to_string(*c.max_in_flight) + " in flight at most, ";
  return out.empty() ? "none" : out.substr(0, out.size() - 2);
}

int ConnectionShow(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto c = store::admin::Connections(db).Show(id);
  if (!c) return NoConnection(id);
  if (inv.json()) {
    Json json(std::cout);
    WriteConnection(json, *c, true);
    json.Finish();
    return 0;
  }
  std::cout << "connection " << c->id << "  tenant=" << c->tenant_id << "  provider=" << c->provider
            << (c->provider_id.empty() ? "" : " (" + c->provider_id + ")") << "\n"
            << "  base url:      " << retry::RedactUrls(c->base_url) << "\n"
            << "  auth:          " << DescribeAuth(*c) << "\n";
  if (c->auth_mode == "api_key") std::cout << "  key header:    " << OrElse(c->api_key_header, "X-Api-Key") << "\n";
  if (c->auth_mode == "oauth2_client_credentials") {
    std::cout << "  oauth2:        token url " << retry::RedactUrls(c->token_url) << ", client id " << c->client_id
              << ", scopes " << OrElse(c->scopes, "(none)") << "\n";
  }
  std::cout << "  status:        " << c->status << (c->status_reason.empty() ? "" : ": " + c->status_reason) << "\n"
            << "  health:        " << c->health << ", last checked " << LastChecked(*c) << ", "
            << Count(c->consecutive_probe_failures, "consecutive probe failure", "consecutive probe failures")
            << (c->last_health_error.empty() ? "" : "; last error: " + c->last_health_error) << "\n"
            << "  health check:  "
            << (c->health_check.empty()
                    ? "none (health stays unknown)"
                    : c->health_check + " expecting " +
                          (c->expected_status ? std::to_string(*c->expected_status) : std::string("any 2xx")))
            << "\n"
            << "  policy:        " << c->policy << "\n"
            << "  limits:        " << DescribeLimits(*c) << "\n"
            << "  runs waiting:  " << c->runs_waiting << "\n"
            << "  open failures: " << c->open_failures << "\n"
            << "  created:       " << c->created_at << "  (updated " << c->updated_at << ")\n";
  return 0;
}

int ConnectionRetire(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto change = store::admin::Connections(db).Retire(id);
  if (!change) return NoConnection(id);
  if (change->previous_status == "retired") {
    std::cout << id << " is already retired\n";
    return 0;
  }
  std::cout << "retired " << id << " (was " << change->previous_status << "); its "
            << Count(change->pending_runs, "pending run", "pending runs")
            << " and any run enqueued for it from now on become poison when claimed\n";
  return 0;
}

int ConnectionActivate(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto change = store::admin::Connections(db).Activate(id);
  if (!change) return NoConnection(id);
  if (change->previous_status == "retired") return Fail(id + " is retired; a retired connection stays retired");
  if (change->previous_status == "active") {
    std::cout << id << " is already active\n";
    return 0;
  }
  std::cout << "activated " << id << " (was " << change->previous_status << "); "
            << Count(change->pending_runs, "pending run", "pending runs") << " can run again\n";
  return 0;
}

}  // namespace

std::optional<std::string> ReadSecretFile(const std::string& path) {
  // A regular file, or a pipe that has a writer (/dev/stdin, <(command)); a
  // device or a FIFO nobody writes to is refused instead of blocking.
  std::string secret;
  try {
    secret = base::ReadSmallFile(path, base::ReadOptions{kMaxSecretFileBytes, true, true});
  } catch (const base::FileError& e) {
    Fail(std::string("cannot read the secret file: ") + e.what());
    return std::nullopt;
  }
  if (secret.size() >= 2 && secret.compare(secret.size() - 2, 2, "\r\n") == 0) {
    secret.resize(secret.size() - 2);
  } else if (!secret.empty() && secret.back() == '\n') {
    secret.pop_back();
  }
  if (secret.empty()) {
    Fail(path + " holds no secret (it is empty)");
    return std::nullopt;
  }
  if (HasControl(secret)) {
    Fail(path + " holds more than one line or control characters; a secret is one line");
    return std::nullopt;
  }
  return secret;
}

namespace {

// A credential version's (sealed secret, fingerprint), bound to its credential.
std::pair<std::string, std::string> SealCredential(const signing::SecretBox& box, const std::string& secret,
                                                   const std::string& credential_id) {
  return {box.Seal(secret, credential_id), box.Fingerprint(secret)};
}

std::string CheckRotationOptions(const Invocation& inv);

int CredentialCreate(const Invocation& inv) {
  if (const auto problem = CheckRotationOptions(inv); !problem.empty()) return UsageError(problem);
  const Context context(inv);
  const auto box = context.MasterKey();
  if (!box) return 2;
  const auto secret = ReadSecretFile(inv.Text("from-file"));
  if (!secret) return 1;
  const store::admin::NewCredential credential{.id = inv.Text("id"),
                                               .tenant_id = inv.Text("tenant"),
                                               .name = inv.Text("name"),
                                               .expires_at = inv.Text("expires-at")};
  store::admin::Connection db(context.DatabaseUrl());
  const std::string created = store::admin::Credentials(db).Create(
      credential, [&](const std::string& id) { return SealCredential(*box, *secret, id); });
  if (inv.Has("rotate-every")) {
    store::admin::RotationPolicies(db).Set(created, *inv.Duration("rotate-every"), inv.Text("rotation-command"));
  }
  std::cout << created << "\n";
  return 0;
}

// --rotation-command: an absolute path to an executable (it is run without a shell). Returns what is wrong, or "".
std::string CheckRotationOptions(const Invocation& inv) {
  if (inv.Has("rotation-command") && !inv.Has("rotate-every")) return "--rotation-command goes with --rotate-every";
  const std::string command = inv.Text("rotation-command");
  if (!command.empty() && (command[0] != '/' || HasControl(command))) {
    return "--rotation-command takes the absolute path of an executable (it is run without a shell)";
  }
  return "";
}

int CredentialRotation(const Invocation& inv) {
  const std::string& id = inv.operand();
  if (inv.Flag("clear") == inv.Has("rotate-every")) return UsageError("give either --rotate-every or --clear");
  if (const auto problem = CheckRotationOptions(inv); !problem.empty()) return UsageError(problem);
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  store::admin::RotationPolicies policies(db);
  if (inv.Flag("clear")) {
    std::cout << (policies.Clear(id, inv.Text("tenant")) ? "cleared the rotation policy of " + id
                                                         : id + " has no rotation policy")
              << "\n";
    return 0;
  }
  const std::string due =
      policies.Set(id, *inv.Duration("rotate-every"), inv.Text("rotation-command"), inv.Text("tenant"));
  std::cout << id << ": next rotation due " << due
            << (inv.Has("rotation-command") ? " (the daemon runs the rotation command, verifies and promotes)"
                                            : " (the daemon raises CredentialRotationDue and an escalation)")
            << "\n";
  return 0;
}

int CredentialRotate(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  const auto box = context.MasterKey();
  if (!box) return 2;
  const auto secret = ReadSecretFile(inv.Text("from-file"));
  if (!secret) return 1;
  const auto [sealed, fingerprint] = SealCredential(*box, *secret, id);
  store::admin::Connection db(context.DatabaseUrl());
  std::cout << store::admin::Credentials(db).Rotate(id, sealed, fingerprint, inv.Text("expires-at")) << "\n";
  return 0;
}

std::string DescribeExpiry(const store::admin::CredentialInfo& c) {
  return c.expires_at.empty() ? "does not expire" : "expires " + c.expires_at + " (" + c.expires_in + ")";
}

void WriteCredential(Json& json, const store::admin::CredentialInfo& c) {
  json.Field("id", c.id)
      .Field("tenant_id", c.tenant_id)
      .StringOrNull("name", c.name)
      .Field("status", c.status)
      .Field("active_version", c.active_version)
      .StringOrNull("fingerprint", c.fingerprint)
      .Time("expires_at", c.expires_at)
      .StringOrNull("expires_in", c.expires_in)
      .Time("created_at", c.created_at)
      .Time("updated_at", c.updated_at);
}

int CredentialShow(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto detail = store::admin::Credentials(db).Show(id);
  if (!detail) return Fail("no credential " + id);
  const auto& c = detail->credential;
  store::admin::RotationPolicies policies(db);
  const auto rotation = policies.Get(id);
  const auto events = policies.Events(id, 20);
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject();
    WriteCredential(json, c);
    json.Key("versions").BeginArray();
    for (const auto& v : detail->versions) {
      json.BeginObject()
          .Field("version", v.version)
          .Field("status", v.status)
          .Field("fingerprint", v.fingerprint)
          .Time("created_at", v.created_at)
          .Time("activated_at", v.activated_at)
          .Time("retired_at", v.retired_at)
          .Time("expires_at", v.expires_at)
          .StringOrNull("verification_error", v.verification_error)
          .EndObject();
    }
    json.EndArray();
    WriteConnections(json, detail->connections);
    json.Key("rotation_policy");
    if (rotation) {
      json.BeginObject()
          .Field("rotate_every", rotation->rotate_every)
          .StringOrNull("rotation_command", rotation->rotation_command)
          .Time("next_due_at", rotation->next_due_at)
          .Field("due_reason", rotation->due_reason)
          .Field("state", rotation->state)
          .Time("last_rotated_at", rotation->last_rotated_at)
          .StringOrNull("last_result", rotation->last_result)
          .StringOrNull("last_error", rotation->last_error)
          .EndObject();
    } else {
      json.Null();
    }
    json.Key("rotation_events").BeginArray();
    for (const auto& e : events) {
      json.BeginObject().Time("at", e.at).Field("event_type", e.event_type).Field("body_json", e.body).EndObject();
    }
    json.EndArray();
    json.EndObject();
    json.Finish();
    return 0;
  }
  std::cout << "credential " << c.id << "  tenant=" << c.tenant_id << "  name=" << Dash(c.name) << "  " << c.status
            << "\n"
            << "  active:  "
            << (c.active_version
                    ? "version " + std::to_string(*c.active_version) + "  " + c.fingerprint + "  " + DescribeExpiry(c)
                    : std::string("none"))
            << "\n"
            << "  created: " << c.created_at << "  (updated " << c.updated_at << ")\n"
            << "versions:\n";
  Table versions = {
      {"version", "status", "fingerprint", "created", "activated", "retired", "expires", "verification error"}};
  for (const auto& v : detail->versions) {
    versions.push_back({std::to_string(v.version), v.status, v.fingerprint, v.created_at, Dash(v.activated_at),
                        Dash(v.retired_at), Dash(v.expires_at), Dash(v.verification_error)});
  }
  PrintTable(versions, "  ");
  if (rotation) {
    std::cout << "rotation policy: every " << rotation->rotate_every << ", "
              << (rotation->rotation_command.empty() ? "no command (the operator is told when due)"
                                                     : "command " + rotation->rotation_command)
              << "\n"
              << "  state: " << rotation->state << ", next due " << rotation->next_due_at << " ("
              << rotation->due_reason << ")"
              << (rotation->last_result.empty() ? "" : "; last: " + rotation->last_result)
              << (rotation->last_error.empty() ? "" : ": " + rotation->last_error) << "\n";
  } else {
    std::cout << "rotation policy: none\n";
  }
  if (!events.empty()) {
    std::cout << "rotation steps (outbox):\n";
    Table steps = {{"at", "event", "details"}};
    for (const auto& e : events) steps.push_back({e.at, e.event_type, e.body});
    PrintTable(steps, "  ");
  }
  if (detail->connections.empty()) {
    std::cout << "connections using it: none\n";
    return 0;
  }
  std::cout << "connections using it:\n";
  Table connections = {{"connection", "provider", "auth", "status", "health"}};
  for (const auto& u : detail->connections) connections.push_back({u.id, u.provider, u.auth_mode, u.status, u.health});
  PrintTable(connections, "  ");
  return 0;
}

int CredentialList(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto credentials = store::admin::Credentials(db).List(inv.Text("tenant"));
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("credentials").BeginArray();
    for (const auto& c : credentials) {
      json.BeginObject();
      WriteCredential(json, c);
      json.EndObject();
    }
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  if (credentials.empty()) {
    std::cout << "no credentials\n";
    return 0;
  }
  Table table = {{"credential", "tenant", "name", "status", "version", "fingerprint", "expires", "expires in"}};
  for (const auto& c : credentials) {
    table.push_back({c.id, c.tenant_id, Dash(c.name), c.status, Dash(c.active_version), Dash(c.fingerprint),
                     OrElse(c.expires_at, "never"), Dash(c.expires_in)});
  }
  PrintTable(table);
  return 0;
}

}  // namespace

void WriteConnection(Json& json, const ConnectionInfo& c, bool settings) {
  json.BeginObject()
      .Field("id", c.id)
      .Field("tenant_id", c.tenant_id)
      .Field("provider", c.provider)
      .Field("base_url", retry::RedactUrls(c.base_url))
      .Field("auth_mode", c.auth_mode)
      .Field("status", c.status)
      .StringOrNull("status_reason", c.status_reason)
      .Field("health", c.health)
      .Field("consecutive_probe_failures", c.consecutive_probe_failures)
      .Time("last_checked_at", c.last_checked_at)
      .StringOrNull("last_health_error", c.last_health_error)
      .StringOrNull("credential_id", c.credential_id)
      .Field("credential_version", c.credential_version)
      .Time("credential_expires_at", c.credential_expires_at)
      .Field("runs_waiting", c.runs_waiting)
      .Field("open_failures", c.open_failures);
  if (settings) {
    json.StringOrNull("provider_id", c.provider_id)
        .StringOrNull("api_key_header", c.api_key_header)
        .StringOrNull("token_url", c.token_url.empty() ? c.token_url : retry::RedactUrls(c.token_url))
        .StringOrNull("client_id", c.client_id)
        .StringOrNull("scopes", c.scopes)
        .StringOrNull("health_check", c.health_check)
        .Field("expected_status", c.expected_status)
        .Field("policy", c.policy)
        .Field("max_in_flight", c.max_in_flight)
        .Field("rate_limit_per_second", c.rate_limit_per_second)
        .Field("rate_limit_burst", c.rate_limit_burst)
        .Time("created_at", c.created_at)
        .Time("updated_at", c.updated_at);
  }
  json.EndObject();
}

std::vector<Command> IntegrationCommands() {
  constexpr std::string_view kTopic = "Connections and credentials (integration runs)";
  const Option tenant_filter = {.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT",
                                .help = "only this tenant's"};
  const Option expires_at = {.name = "expires-at", .value_name = "TS",
                             .help = "when the secret expires (counted in pgcourier_credentials_expiring)"};
  const Option from_file = {.name = "from-file",
                            .value_name = "FILE",
                            .help = "the secret alone (or /dev/stdin); one trailing newline is dropped. api_key: the "
                                    "key; bearer: the token; basic: user:password; oauth2: the client secret",
                            .required = true};
  const Option rotate_every = {.name = "rotate-every", .kind = Kind::kDuration, .value_name = "DURATION",
                               .help = "a rotation policy: rotate this often (e.g. 90d), and at once after an auth "
                                       "refusal of a connection using it"};
  const Option rotation_command = {
      .name = "rotation-command", .value_name = "PATH",
      .help = "with --rotate-every: an executable that prints the new secret on stdout (run by the daemon without a "
              "shell, 10 s at most, its output never logged); without one the daemon raises CredentialRotationDue"};
  return {
      {.topic = kTopic,
       .name = "connection create",
       .summary = "create a connection; prints its id",
       .description = "Every --auth but none needs --credential (of the same tenant); oauth2_client_credentials also "
                      "--token-url and --client-id. The URLs are checked as the daemon would (syntax, then the "
                      "policy's endpoint rules).",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "its tenant",
                    .required = true},
                   {.name = "provider", .value_name = "NAME",
                    .help = "the vendor, e.g. twilio: the key of a registered provider links it (provider create)",
                    .required = true},
                   {.name = "base-url", .kind = Kind::kUrl, .value_name = "URL",
                    .help = "the API's base URL; run paths are appended to it", .required = true},
                   {.name = "auth",
                    .kind = Kind::kChoice,
                    .value_name = "MODE",
                    .help = "how requests authenticate",
                    .default_value = "none",
                    .choices = {"none", "api_key", "bearer", "basic", "oauth2_client_credentials"}},
                   {.name = "credential", .kind = Kind::kIdentifier, .value_name = "CRED_ID",
                    .help = "the credential (credential create)"},
                   {.name = "api-key-header", .value_name = "HEADER", .help = "api_key: the header (X-Api-Key)"},
                   {.name = "token-url", .kind = Kind::kUrl, .value_name = "URL", .help = "oauth2: the token endpoint"},
                   {.name = "client-id", .value_name = "ID", .help = "oauth2: the client id"},
                   {.name = "scopes", .value_name = "'a b'", .help = "oauth2: scopes, space-separated"},
                   {.name = "health-check", .value_name = "'METHOD /path'", .help = "the probe, e.g. 'GET /health'"},
                   {.name = "expect-status", .kind = Kind::kInt, .value_name = "N",
                    .help = "the probe's expected status (default: any 2xx)", .min = 100, .max = 599},
                   {.name = "policy", .value_name = "NAME", .help = "the policy by name", .default_value = "default"},
                   {.name = "status", .kind = Kind::kChoice, .value_name = "STATUS", .help = "its first status",
                    .default_value = "active", .choices = {"active", "pending"}},
                   {.name = "rate-limit", .kind = Kind::kNumber, .value_name = "PER_SECOND",
                    .help = "most requests per second, per daemon", .max = 1'000'000,
                    .expect = "requests per second, a number above 0 (e.g. 5 or 0.5)"},
                   {.name = "burst", .kind = Kind::kInt, .value_name = "N", .help = "the rate limit's bucket size",
                    .min = 1, .max = 1'000'000},
                   {.name = "max-in-flight", .kind = Kind::kInt, .value_name = "N",
                    .help = "most requests in flight, per daemon", .min = 1, .max = 1'000'000},
                   {.name = "id", .kind = Kind::kIdentifier, .value_name = "ID",
                    .help = "its id (default: a new conn_... id)"}},
       .example = "pgcourierctl connection create --tenant acme --provider twilio --base-url https://api.twilio.com \\\n"
                  "  --auth basic --credential cred_... --health-check 'GET /health'",
       .run = ConnectionCreate},
      {.topic = kTopic,
       .name = "connection list",
       .summary = "connections with status, health and runs waiting",
       .options = {tenant_filter},
       .example = "pgcourierctl connection list --json",
       .json = true,
       .run = ConnectionList},
      {.topic = kTopic,
       .name = "connection show",
       .operand = "ID",
       .summary = "one connection: settings, health, credential version and expiry, open failures",
       .example = "pgcourierctl connection show conn_...",
       .json = true,
       .run = ConnectionShow},
      {.topic = kTopic,
       .name = "connection retire",
       .operand = "ID",
       .summary = "stop using it: its pending runs become poison when claimed",
       .example = "pgcourierctl connection retire conn_...",
       .run = ConnectionRetire},
      {.topic = kTopic,
       .name = "connection activate",
       .operand = "ID",
       .summary = "make a pending or degraded connection active again",
       .example = "pgcourierctl connection activate conn_...",
       .run = ConnectionActivate},
      {.topic = kTopic,
       .name = "credential create",
       .summary = "seal the secret of a file with the master key; prints the id",
       .description = "No command prints a secret back; show and list give its fingerprint.",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "its tenant",
                    .required = true},
                   from_file,
                   {.name = "name", .value_name = "NAME", .help = "a name for people"},
                   expires_at,
                   rotate_every,
                   rotation_command,
                   {.name = "id", .kind = Kind::kIdentifier, .value_name = "ID",
                    .help = "its id (default: a new cred_... id)"}},
       .example = "pgcourierctl credential create --tenant acme --name twilio --from-file key.txt --expires-at 2027-06-01",
       .run = CredentialCreate},
      {.topic = kTopic,
       .name = "credential rotate",
       .operand = "CRED",
       .summary = "store the secret of a file as the next version, rotating; prints the version number",
       .description = "The daemon verifies it with the health check of a connection using it, then activates it.",
       .options = {from_file, expires_at},
       .example = "pgcourierctl credential rotate cred_... --from-file new-key.txt",
       .run = CredentialRotate},
      {.topic = kTopic,
       .name = "credential rotation",
       .operand = "CRED",
       .summary = "set (or --clear) the credential's rotation policy; prints when the next rotation is due",
       .description = "When a rotation is due (or a connection using the credential was refused with 401/403), the "
                      "maintenance leader runs the rotation command, stores its output as the rotating version, "
                      "verifies it with a test call and promotes it (the prior version stays active until then); "
                      "without a command it raises CredentialRotationDue and an escalation. Every step is an "
                      "outbox event, listed by credential show.",
       .options = {rotate_every, rotation_command,
                   {.name = "clear", .kind = Kind::kFlag, .help = "remove the policy"},
                   {.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT",
                    .help = "act as this tenant: only its credentials"}},
       .example = "pgcourierctl credential rotation cred_... --rotate-every 90d --rotation-command /usr/local/bin/new-key",
       .run = CredentialRotation},
      {.topic = kTopic,
       .name = "credential show",
       .operand = "CRED",
       .summary = "status, versions and fingerprints, rotation policy and steps, connections using it",
       .example = "pgcourierctl credential show cred_... --json",
       .json = true,
       .run = CredentialShow},
      {.topic = kTopic,
       .name = "credential list",
       .summary = "credentials, the soonest to expire first",
       .options = {tenant_filter},
       .example = "pgcourierctl credential list --tenant acme",
       .json = true,
       .run = CredentialList},
  };
}

}  // namespace pgcourier::ctl

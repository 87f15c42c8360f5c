#include "api/api.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <vector>

#include "base/file.hpp"
#include "json/json.hpp"
#include "signing/webhook_signature.hpp"
#include "store/errors.hpp"

namespace pgcourier::gateway {
namespace {

using store::api::Arg;

std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// An id in a path: the identifier grammar of courier.new_id and the CLI
// (letters, digits, _ . : ~ -), at most 255 characters. Anything else cannot
// name an object: 404 without asking the database.
bool IsId(const std::string& s) {
  if (s.empty() || s.size() > 255) return false;
  for (const unsigned char c : s) {
    if (!std::isalnum(c) && c != '_' && c != '.' && c != ':' && c != '~' && c != '-') return false;
  }
  return true;
}

std::optional<std::string> Scope(const store::api::TokenScope& scope) { return scope.tenant_id; }

Arg Text(std::optional<std::string> v) { return Arg{std::move(v), "text"}; }
Arg Jsonb(std::optional<std::string> v) { return Arg{std::move(v), "jsonb"}; }

// ?limit=N: nullopt when absent; a problem when it is not a number 1..500.
bool ReadLimit(const Request& r, std::optional<std::string>& out, std::optional<Response>& problem) {
  const auto text = r.Query("limit");
  if (!text) return true;
  int n = 0;
  const auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (ec != std::errc() || p != text->data() + text->size() || n < 1 || n > 500) {
    problem = Problem(400, "limit: a whole number from 1 to 500");
    return false;
  }
  out = std::to_string(n);
  return true;
}

// The body as JSON text for the database: "{}" when empty; nullopt (and a 400) when not JSON.
std::optional<std::string> JsonBody(const Request& r, std::optional<Response>& problem) {
  if (r.body.empty()) return std::string("{}");
  if (!json::IsValid(r.body)) {
    problem = Problem(400, "the body is not valid JSON");
    return std::nullopt;
  }
  return r.body;
}

// A filter object from the query parameters that are named.
std::string Filters(const Request& r, std::initializer_list<const char*> names) {
  std::string out = "{";
  for (const char* name : names) {
    if (auto v = r.Query(name)) {
      if (out.size() > 1) out += ",";
      out += JsonString(name) + ":" + JsonString(*v);
    }
  }
  return out + "}";
}

std::optional<std::string> IdempotencyKey(const Request& r) { return r.Header("idempotency-key"); }

// What a creating call answers: 201 with the object; 200 and Idempotent-Replayed
// when its idempotency key named an object an earlier call created.
bool IsReplay(const std::string& created) { return created.find(R"("replayed": true)") != std::string::npos; }
Response Created(std::string created) {
  if (!IsReplay(created)) return Json(std::move(created), 201);
  auto out = Json(std::move(created), 200);
  out.headers.emplace_back("Idempotent-Replayed", "true");
  return out;
}

}  // namespace

Response ProblemFromStore(const std::exception& error) {
  const auto* e = dynamic_cast<const store::StoreError*>(&error);
  if (e == nullptr) {
    spdlog::error("api: {}", error.what());
    return Problem(500);
  }
  const std::string& state = e->sqlstate();
  if (e->kind() == store::StoreError::Kind::kConnectionLost) {
    spdlog::warn("api: database unavailable: {}", e->what());
    return Problem(503, "the database is unavailable");
  }
  if (state == "P0002" || state == "42501") return Problem(404);
  if (state == "23505" || state == "55000") return Problem(409, e->server_message());
  if (state == "54000") return Problem(413, e->server_message());
  if (state == "57014") return Problem(503, "the database did not answer within the statement deadline");
  if (state.rfind("22", 0) == 0 || state.rfind("23", 0) == 0) return Problem(422, e->server_message());
  if (e->kind() == store::StoreError::Kind::kConflict) return Problem(503, "a conflicting change; try again");
  spdlog::error("api: {} (SQLSTATE {})", e->what(), state);
  return Problem(500);
}

Response ProblemUnreachable(const std::vector<std::string>& shards) {
  if (shards.size() == 1 && shards.front().empty()) return Problem(503, "the database is unavailable");
  std::string names;
  for (const auto& name : shards) names += (names.empty() ? "" : ", ") + name;
  return Problem(503, std::string(shards.size() == 1 ? "the database of shard " : "the databases of shards ") + names +
                          (shards.size() == 1 ? " is" : " are") + " unreachable");
}

Api::Api(ApiOptions options, Shards& shards, const signing::SecretBox* master_key, const UrlCheck& urls)
    : options_(std::move(options)), shards_(shards), master_key_(master_key), urls_(urls),
      limiter_(options_.rate_per_second, options_.rate_burst) {}

std::optional<Response> Api::RefusedUrls(const std::string& body, std::initializer_list<const char*> fields,
                                         const std::string& current_policy) const {
  const std::string policy = json::ValueAtPointer(body, "/policy").value_or(current_policy);
  for (const char* field : fields) {
    const auto url = json::ValueAtPointer(body, std::string("/") + field);
    if (!url) continue;
    if (auto refused = urls_.Check(field, *url, policy)) {
      auto problem = Problem(422, refused->detail);
      problem.body.insert(problem.body.size() - 1, R"(,"field":)" + JsonString(refused->field));
      return problem;
    }
  }
  return std::nullopt;
}

Api::Caller Api::Authenticate(const std::string& token) {
  Caller caller;
  // Tokens are 'pgc_' + 43 characters: anything else is refused without a query.
  if (token.rfind("pgc_", 0) != 0 || token.size() > 100) {
    caller.refusal = Problem(401, "a valid API token is required (Authorization: Bearer pgc_...)");
    return caller;
  }
  std::optional<store::api::TokenScope> scope;
  Shards::Found found;
  try {
    found = shards_.Find(token, [&](store::api::Pool& pool) {
      scope = pool.VerifyToken(token);
      return scope.has_value();
    });
  } catch (const std::exception& e) {
    caller.refusal = ProblemFromStore(e);
    return caller;
  }
  if (!found.shard) {
    // Unknown to every shard that answered: 401 only when every shard answered.
    caller.refusal = found.unreachable.empty()
                         ? Problem(401, "a valid API token is required (Authorization: Bearer pgc_...)")
                         : ProblemUnreachable(found.unreachable);
    return caller;
  }
  if (!shards_.Holds(*found.shard, scope->tenant_id)) {
    spdlog::warn(
        "api: token {} of tenant {} is stored in shard {}, but the shard map puts the tenant in {}: "
        "refused (create the tenant's tokens in its shard)",
        scope->token_id, *scope->tenant_id, shards_.Name(*found.shard), shards_.ShardOfTenant(*scope->tenant_id));
    caller.refusal = Problem(401, "a valid API token is required (Authorization: Bearer pgc_...)");
    return caller;
  }
  caller.scope = std::move(*scope);
  caller.pool = &shards_.PoolOf(*found.shard);
  caller.shard = shards_.Name(*found.shard);
  int retry_after = 1;
  if (!limiter_.Allow(caller.scope.token_id, &retry_after)) {
    caller.refusal = Problem(429, "this token's rate limit is reached");
    caller.refusal->headers.emplace_back("Retry-After", std::to_string(retry_after));
  }
  return caller;
}

namespace {

// One database's readiness: "ready", or why not.
std::string Readiness(store::api::Pool& pool, int required_version) {
  try {
    const auto migrated = pool.SchemaVersion();
    if (!migrated) return "schema not migrated";
    if (*migrated != required_version) {
      return "schema version " + std::to_string(*migrated) + ", this build needs " + std::to_string(required_version) +
             " (pgcourierctl migrate)";
    }
    return "ready";
  } catch (const std::exception& e) {
    const auto* se = dynamic_cast<const store::StoreError*>(&e);
    return se && se->kind() == store::StoreError::Kind::kConnectionLost ? "database unreachable"
                                                                        : "database check failed";
  }
}

}  // namespace

// Ready when every shard is: one line a shard ("one: ready"), or without a map the one line of before.
Response Api::Ready() {
  Response r;
  r.content_type = "text/plain; charset=utf-8";
  for (std::size_t i = 0; i < shards_.Size(); ++i) {
    const std::string state = Readiness(shards_.PoolOf(i), options_.required_schema_version);
    if (state != "ready") r.status = 503;
    r.body += (shards_.Sharded() ? shards_.Name(i) + ": " : std::string()) + state + "\n";
  }
  return r;
}

std::optional<Response> Api::Handle(const Request& request) {
  if (request.path == "/healthz") {
    Response r;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "alive\n";
    return r;
  }
  if (request.path == "/readyz") return Ready();
  if (request.path != "/api/v1" && request.path.rfind("/api/v1/", 0) != 0) return std::nullopt;
  if (request.path == "/api/v1/openapi.json" && request.method == "GET") {
    return Json(options_.openapi_document);
  }
  const auto auth = request.Header("authorization");
  if (!auth || auth->rfind("Bearer ", 0) != 0) {
    auto p = Problem(401, "a valid API token is required (Authorization: Bearer pgc_...)");
    p.headers.emplace_back("WWW-Authenticate", "Bearer");
    return p;
  }
  auto caller = Authenticate(auth->substr(7));
  if (caller.refusal) {
    if (caller.refusal->status == 401) caller.refusal->headers.emplace_back("WWW-Authenticate", "Bearer");
    return *caller.refusal;
  }
  // An operator token names the tenant it writes for (tenant_id in the body): with a shard map, only a
  // tenant that the map puts in the token's shard, so nothing of a tenant is written in another shard.
  if (shards_.Sharded() && !caller.scope.tenant_id && !request.body.empty()) {
    const auto tenant = json::ValueAtPointer(request.body, "/tenant_id");
    if (tenant && shards_.ShardOfTenant(*tenant) != caller.shard) {
      return Problem(422, "tenant_id: the shard map puts " + *tenant + " in " + shards_.ShardOfTenant(*tenant) +
                              ", and this token is shard " + caller.shard + "'s");
    }
  }
  try {
    return Route(request, caller.scope, *caller.pool);
  } catch (const std::exception& e) {
    return ProblemFromStore(e);
  }
}

Response Api::Route(const Request& r, const store::api::TokenScope& token, store::api::Pool& shard) {
  const auto seg = Segments(r.path);  // "api", "v1", ...
  const auto scope = Scope(token);
  const std::string& m = r.method;
  const std::size_t n = seg.size();
  std::optional<Response> problem;
  std::optional<std::string> limit;
  auto after = r.Query("after");
  if (after && !IsId(*after)) return Problem(400, "after: a cursor from an earlier page's next");
  if (!ReadLimit(r, limit, problem)) return *problem;
  auto not_allowed = [&] { return Problem(405); };
  if (n < 3) return Problem(404);
  const std::string& collection = seg[2];
  if (n >= 4 && !IsId(seg[3])) return Problem(404);

  if (collection == "subscriptions") {
    if (n == 3) {
      if (m == "GET") return Json(shard.CallJson("api_subscriptions", {Text(scope), Text(after), Arg{limit, "integer"}}));
      if (m != "POST") return not_allowed();
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      if (auto refused = RefusedUrls(*body, {"url"}, "default")) return *refused;
      if (master_key_ == nullptr) return Problem(503, "no master key is configured: secrets cannot be sealed");
      // The id is chosen here: the secret is sealed bound to it (secret_box.hpp).
      const std::string id = shard.NewId("sub_");
      const std::string secret = signing::GenerateWebhookSecret(32);
      const std::string sealed = master_key_->Seal(secret, id);
      auto created = shard.CallJson(
          "api_create_subscription",
          {Text(scope), Jsonb(*body), Text(id), Text(sealed), Text(secret.substr(secret.size() - 4)),
           Text(IdempotencyKey(r))});
      // The secret is shown once, here; the database keeps it sealed.
      if (!IsReplay(created)) created.insert(created.size() - 1, R"(, "secret": )" + JsonString(secret));
      return Created(std::move(created));
    }
    const auto id = Text(seg[3]);
    if (n == 4) {
      if (m == "GET") return Json(shard.CallJson("api_subscription", {Text(scope), id}));
      if (m != "PATCH") return not_allowed();
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      if (json::ValueAtPointer(*body, "/url")) {
        // A new URL under the policy it will have: the body's, else the subscription's own.
        const auto current = json::ValueAtPointer(shard.CallJson("api_subscription", {Text(scope), id}), "/policy");
        if (auto refused = RefusedUrls(*body, {"url"}, current.value_or("default"))) return *refused;
      }
      return Json(shard.CallJson("api_update_subscription", {Text(scope), id, Jsonb(*body)}));
    }
    if (n == 5 && m != "POST") return not_allowed();
    if (n == 5 && (seg[4] == "pause" || seg[4] == "resume" || seg[4] == "disable")) {
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      std::optional<std::string> reason = json::ValueAtPointer(*body, "/reason");
      return Json(shard.CallJson("api_set_subscription_state", {Text(scope), id, Text(seg[4]), Text(reason)}));
    }
    if (n == 5 && seg[4] == "rotate-secret") {
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      if (master_key_ == nullptr) return Problem(503, "no master key is configured: secrets cannot be sealed");
      const auto grace = json::ValueAtPointer(*body, "/grace");  // an interval: "24 hours", "0"
      const std::string secret = signing::GenerateWebhookSecret(32);
      auto rotated = shard.CallJson("api_rotate_subscription_secret",
                                    {Text(scope), id, Text(master_key_->Seal(secret, seg[3])),
                                     Text(secret.substr(secret.size() - 4)), Arg{grace, "interval"}});
      rotated.insert(rotated.size() - 1, R"(, "secret": )" + JsonString(secret));
      return Json(rotated, 200);
    }
    if (n == 5 && seg[4] == "redeliver") {
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      return Json(shard.CallJson("api_redeliver", {Text(scope), id, Jsonb(*body)}));
    }
    if (n == 5 && seg[4] == "revoke-secret") {
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      return Json(shard.CallJson("api_revoke_subscription_secrets",
                                 {Text(scope), id, Text(json::ValueAtPointer(*body, "/secret_id"))}));
    }
    return Problem(404);
  }

  if (collection == "events" && n == 3) {
    if (m == "GET") {
      return Json(shard.CallJson("api_events", {Text(scope), Text(after), Arg{limit, "integer"},
                                                Text(r.Query("event_type"))}));
    }
    if (m != "POST") return not_allowed();
    auto body = JsonBody(r, problem);
    if (!body) return *problem;
    return Json(shard.CallJson("api_publish", {Text(scope), Jsonb(*body), Text(IdempotencyKey(r))}), 202);
  }

  if (collection == "deliveries") {
    if (m != "GET") return not_allowed();
    if (n == 3) {
      return Json(shard.CallJson("api_deliveries",
                                 {Text(scope), Jsonb(Filters(r, {"status", "subscription_id", "event_type", "since",
                                                                 "until"})),
                                  Text(after), Arg{limit, "integer"}}));
    }
    if (n == 4) return Json(shard.CallJson("api_delivery", {Text(scope), Text(seg[3])}));
    return Problem(404);
  }

  if (collection == "dead-letters") {
    if (n == 3) {
      if (m != "GET") return not_allowed();
      return Json(shard.CallJson("api_dead_letters", {Text(scope), Jsonb(Filters(r, {"subscription_id", "event_type"})),
                                                      Text(after), Arg{limit, "integer"}}));
    }
    if (n == 4 && seg[3] == "replay") {
      if (m != "POST") return not_allowed();
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      // {"tenant_id"?, "subscription_id"?, "event_type"?, "since"?, "until"?, "dry_run"?}
      const auto dry_run = json::ValueAtPointer(*body, "/dry_run");
      return Json(shard.CallJson("api_replay", {Text(scope), Jsonb(*body), Arg{dry_run, "boolean"}}));
    }
    return Problem(404);
  }
  if (collection == "runs") {
    if (n == 3) {
      if (m == "GET") {
        return Json(shard.CallJson("api_runs", {Text(scope), Jsonb(Filters(r, {"status", "connection_id"})),
                                                Text(after), Arg{limit, "integer"}}));
      }
      if (m != "POST") return not_allowed();
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      return Json(shard.CallJson("api_enqueue_run", {Text(scope), Jsonb(*body), Text(IdempotencyKey(r))}), 202);
    }
    if (n == 4) {
      if (m != "GET") return not_allowed();
      return Json(shard.CallJson("api_run", {Text(scope), Text(seg[3])}));
    }
    return Problem(404);
  }

  if (collection == "connections") {
    if (n == 3) {
      if (m == "GET") return Json(shard.CallJson("api_connections", {Text(scope), Text(after), Arg{limit, "integer"}}));
      if (m != "POST") return not_allowed();
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      if (auto refused = RefusedUrls(*body, {"base_url", "token_url"}, "default")) return *refused;
      return Created(shard.CallJson("api_create_connection", {Text(scope), Jsonb(*body), Text(IdempotencyKey(r))}));
    }
    if (n == 4) {
      if (m != "GET") return not_allowed();
      return Json(shard.CallJson("api_connection", {Text(scope), Text(seg[3])}));
    }
    if (n == 5 && (seg[4] == "retire" || seg[4] == "activate")) {
      if (m != "POST") return not_allowed();
      return Json(shard.CallJson("api_set_connection_status", {Text(scope), Text(seg[3]), Text(seg[4])}));
    }
    return Problem(404);
  }

  if (collection == "credentials") {
    if (n == 3) {
      if (m != "POST") return not_allowed();
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      if (master_key_ == nullptr) return Problem(503, "no master key is configured: secrets cannot be sealed");
      // {"tenant_id"? (operator tokens), "name"?, "secret", "expires_at"?}: the secret is sealed here,
      // bound to the id, and goes to the database only sealed.
      auto secret = json::ValueAtPointer(*body, "/secret");
      if (!secret || secret->empty() || secret->find_first_of("\r\n") != std::string::npos) {
        return Problem(422, "secret: the credential's secret (a key, token or client secret) is required");
      }
      const std::string id = shard.NewId("cred_");
      const std::string sealed = master_key_->Seal(*secret, id);
      const std::string fingerprint = master_key_->Fingerprint(*secret);
      base::Wipe(*secret);
      return Json(shard.CallJson("api_create_credential",
                                 {Text(scope), Text(json::ValueAtPointer(*body, "/tenant_id")),
                                  Text(json::ValueAtPointer(*body, "/name")),
                                  Arg{json::ValueAtPointer(*body, "/expires_at"), "timestamptz"}, Text(id), Text(sealed),
                                  Text(fingerprint)}),
                  201);
    }
    if (n == 4) {
      if (m != "GET") return not_allowed();
      return Json(shard.CallJson("api_credential", {Text(scope), Text(seg[3])}));
    }
    if (n == 5 && seg[4] == "rotate") {
      if (m != "POST") return not_allowed();
      auto body = JsonBody(r, problem);
      if (!body) return *problem;
      if (master_key_ == nullptr) return Problem(503, "no master key is configured: secrets cannot be sealed");
      auto secret = json::ValueAtPointer(*body, "/secret");
      if (!secret || secret->empty() || secret->find_first_of("\r\n") != std::string::npos) {
        return Problem(422, "secret: the new secret is required");
      }
      const std::string sealed = master_key_->Seal(*secret, seg[3]);
      const std::string fingerprint = master_key_->Fingerprint(*secret);
      base::Wipe(*secret);
      return Json(shard.CallJson("api_rotate_credential",
                                 {Text(scope), Text(seg[3]), Text(sealed), Text(fingerprint),
                                  Arg{json::ValueAtPointer(*body, "/expires_at"), "timestamptz"}}),
                  202);
    }
    if (n == 5 && seg[4] == "retire") {
      if (m != "POST") return not_allowed();
      return Json(shard.CallJson("api_retire_credential", {Text(scope), Text(seg[3])}));
    }
    return Problem(404);
  }

  if (collection == "escalations") {
    if (n == 3) {
      if (m != "GET") return not_allowed();
      return Json(shard.CallJson("api_escalations", {Text(scope), Jsonb(Filters(r, {"all"})), Text(after),
                                                     Arg{limit, "integer"}}));
    }
    if (n == 5 && seg[4] == "acknowledge") {
      if (m != "POST") return not_allowed();
      return Json(shard.CallJson("api_acknowledge_escalation", {Text(scope), Text(seg[3])}));
    }
    return Problem(404);
  }
  return Problem(404);
}

}  // namespace pgcourier::gateway

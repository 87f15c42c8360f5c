// pgcourierctl subscription ...: create (the secret generated and sealed
// here, the rest checked by courier.create_subscription), update (PATCH over
// the mutable fields), list, show, pause, resume, disable, rotate-secret,
// revoke-secret.
#include <iostream>
#include <sstream>

#include "base/file.hpp"
#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "retry/text.hpp"
#include "signing/webhook_signature.hpp"
#include "store/admin/subscriptions.hpp"

namespace pgcourier::ctl {
namespace {

using store::admin::SecretInfo;
using store::admin::SubscriptionInfo;
using store::admin::SubscriptionState;
using store::admin::Subscriptions;

// ---- printing ----

void PrintSecret(const SecretInfo& secret, std::string_view note = "") {
  if (secret.public_key.empty()) {
    std::cout << "  secret:  " << secret.id << "  whsec_..." << secret.last4 << "  created " << secret.created_at;
  } else {
    std::cout << "  key:     " << secret.id << "  v1a " << secret.public_key << "  created " << secret.created_at;
  }
  if (!secret.expires_at.empty()) std::cout << "  expires " << secret.expires_at;
  if (!note.empty()) std::cout << "  " << note;
  std::cout << "\n";
}

void PrintSecrets(const std::vector<SecretInfo>& secrets) {
  for (const auto& secret : secrets) PrintSecret(secret);
  if (secrets.empty()) std::cout << "  secret:  none active (add one with 'subscription rotate-secret')\n";
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string DescribeLimits(const SubscriptionInfo& s) {
  std::string out;
  if (s.rate_limit_per_second) out += FormatNumber(*s.rate_limit_per_second) + " requests/s, ";
  if (s.rate_limit_burst) out += "burst " + std::to_string(*s.rate_limit_burst) + ", ";
  if (s.max_in_flight) out += std::to_string(*s.max_in_flight) + " in flight at most, ";
  return out.empty() ? "the policy's" : out.substr(0, out.size() - 2);
}

void PrintSubscription(const SubscriptionInfo& s) {
  std::cout << s.id << "  tenant=" << s.tenant_id << "  " << s.state.state << "  policy=" << s.policy << "\n"
            << "  url:     " << retry::RedactUrls(s.url) << "\n"
            << "  events:  " << Join(s.event_types) << "\n";
  if (!s.description.empty()) std::cout << "  about:   " << s.description << "\n";
  if (s.ordering == "fifo") {
    std::cout << "  order:   fifo per ordering key"
              << (s.ordering_key_field.empty() ? "" : " (else payload field " + s.ordering_key_field + ")") << "\n";
  }
  if (!s.filter.empty()) std::cout << "  filter:  " << s.filter << "\n";
  if (!s.scope_json.empty()) std::cout << "  scope:   " << s.scope_json << "\n";
  std::cout << "  limits:  " << DescribeLimits(s) << "\n"
            << "  created: " << s.created_at << "\n";
  PrintState(s.state);
  PrintSecrets(s.secrets);
}

void PrintNewSecret(const std::string& secret) {
  std::cout << "signing secret (shown once, store it with the receiver): " << secret << "\n";
}

void PrintPublicKey(const std::string& public_key) {
  std::cout << "public key (v1a, not secret: receivers verify webhook-signature with it): " << public_key << "\n";
}

// A new signing key of `scheme` for `subscription_id`: {sealed, last4,
// the secret to print once (v1) or "", the public key (v1a) or ""}.
struct NewKey {
  std::string sealed, last4, secret, public_key;
};
NewKey MakeKey(const signing::SecretBox& box, const std::string& scheme, const std::string& subscription_id) {
  NewKey key;
  if (scheme == "v1a") {
    auto [private_key, public_key] = signing::GenerateEd25519Secret();
    key.sealed = box.Seal(private_key, subscription_id);
    key.public_key = std::move(public_key);
    key.last4 = key.public_key.substr(key.public_key.size() - 4);
    base::Wipe(private_key);
  } else {
    key.secret = signing::GenerateWebhookSecret(32);
    key.sealed = box.Seal(key.secret, subscription_id);
    key.last4 = key.secret.substr(key.secret.size() - 4);
  }
  return key;
}

void WriteSecret(Json& json, const SecretInfo& s) {
  json.BeginObject().Field("id", s.id).Field("last4", s.last4).Time("created_at", s.created_at).Time(
      "expires_at", s.expires_at);
  json.Field("scheme", s.public_key.empty() ? "v1" : "v1a").StringOrNull("public_key", s.public_key);
  json.EndObject();
}

void WriteSecrets(Json& json, std::string_view key, const std::vector<SecretInfo>& secrets) {
  json.Key(key).BeginArray();
  for (const auto& s : secrets) WriteSecret(json, s);
  json.EndArray();
}

// The subscription object of README's "JSON output".
void WriteSubscription(Json& json, const SubscriptionInfo& s, bool with_deliveries) {
  json.BeginObject()
      .Field("id", s.id)
      .Field("tenant_id", s.tenant_id)
      .Field("url", retry::RedactUrls(s.url))
      .Strings("event_types", s.event_types)
      .Field("policy", s.policy)
      .StringOrNull("description", s.description)
      .Field("ordering", s.ordering)
      .StringOrNull("ordering_key_field", s.ordering_key_field)
      .Field("max_in_flight", s.max_in_flight)
      .Field("rate_limit_per_second", s.rate_limit_per_second)
      .Field("rate_limit_burst", s.rate_limit_burst)
      .StringOrNull("filter", s.filter)
      .Key("scope")
      .Raw(s.scope_json)
      .Time("created_at", s.created_at)
      .Time("updated_at", s.updated_at)
      .Key("state");
  WriteState(json, s.state);
  WriteSecrets(json, "secrets", s.secrets);
  if (with_deliveries) {
    json.Key("deliveries_by_status").BeginObject();
    for (const auto& [status, count] : s.deliveries_by_status) json.Field(status, count);
    json.EndObject();
  }
  json.EndObject();
}

int NoSubscription(const std::string& id) { return Fail("no subscription " + id); }

// ---- commands ----

int Create(const Invocation& inv) {
  const Context context(inv);
  const std::string policy = inv.Text("policy");
  int exit_code = 0;
  const auto url = context.CheckUrl("url", inv.Text("url"), policy, exit_code);
  if (!url) return exit_code;
  if (!context.CheckPolicy(policy)) return 1;
  const auto box = context.MasterKey();
  if (!box) return 2;
  store::admin::Connection db(context.DatabaseUrl());
  Subscriptions subscriptions(db);
  store::admin::NewSubscription sub;
  sub.id = inv.Has("id") ? inv.Text("id") : subscriptions.NewId();
  sub.tenant_id = inv.Text("tenant");
  sub.url = url->url;
  sub.event_types = inv.List("events");
  sub.policy = policy;
  sub.description = inv.Text("description");
  sub.filter = inv.Text("filter");
  std::string error;
  const auto scope = LabelPairsJson(inv.Text("scope"), error);
  if (!scope) return UsageError("--scope: " + error);
  sub.scope_json = *scope;
  const auto key = MakeKey(*box, inv.Text("signature"), sub.id);
  sub.sealed_secret = key.sealed;
  sub.secret_last4 = key.last4;
  sub.public_key = key.public_key;
  const std::string id = subscriptions.Create(sub);
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Field("id", id).Field("url", retry::RedactUrls(sub.url));
    if (key.public_key.empty()) {
      json.Field("secret", key.secret);
    } else {
      json.Field("public_key", key.public_key);
    }
    json.EndObject();
    json.Finish();
    return 0;
  }
  std::cout << "created subscription " << id << "\n";
  if (key.public_key.empty()) {
    PrintNewSecret(key.secret);
  } else {
    PrintPublicKey(key.public_key);
  }
  return 0;
}

// The fields `subscription update` changes: one row each, the option that
// sets it and its key in courier.update_subscription()'s changes. A new
// mutable field is one row here and one key there
// (sql/schema/50_management.sql), as filter and scope are.
struct MutableField {
  std::string_view option;
  std::string_view key;
  enum Type { kText, kUrl, kList, kInt, kNumber, kLabels } type;
};
const std::vector<MutableField> kMutableFields = {
    {"url", "url", MutableField::kUrl},
    {"events", "event_types", MutableField::kList},
    {"policy", "policy", MutableField::kText},
    {"description", "description", MutableField::kText},
    {"ordering", "ordering", MutableField::kText},
    {"ordering-key-field", "ordering_key_field", MutableField::kText},
    {"max-in-flight", "max_in_flight", MutableField::kInt},
    {"rate-limit", "rate_limit_per_second", MutableField::kNumber},
    {"burst", "rate_limit_burst", MutableField::kInt},
    {"filter", "filter", MutableField::kText},
    {"scope", "scope", MutableField::kLabels},
};

int Update(const Invocation& inv) {
  const std::string& id = inv.operand();
  bool any = false;
  for (const auto& f : kMutableFields) any = any || inv.Has(f.option);
  if (!any) {
    return UsageError("subscription update needs at least one change (--url, --events, --policy, --description, "
                      "--ordering, --ordering-key-field, --max-in-flight, --rate-limit, --burst, --filter or "
                     "--scope)");
  }
  std::string scope_error;
  const auto scope = inv.Cleared("scope") ? std::optional<std::string>("") : LabelPairsJson(inv.Text("scope"), scope_error);
  if (!scope) return UsageError("--scope: " + scope_error);
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  Subscriptions subscriptions(db);
  const auto before = subscriptions.Show(id);
  if (!before) return NoSubscription(id);
  const std::string policy = inv.Has("policy") ? inv.Text("policy") : before->policy;
  if (inv.Has("policy") && !context.CheckPolicy(policy)) return 1;
  std::string url;
  if (inv.Has("url")) {
    int exit_code = 0;
    const auto checked = context.CheckUrl("url", inv.Text("url"), policy, exit_code);
    if (!checked) return exit_code;
    url = checked->url;
  }

  std::ostringstream changes;
  Json json(changes);
  json.BeginObject();
  std::vector<std::string> changed;
  for (const auto& f : kMutableFields) {
    if (!inv.Has(f.option)) continue;
    changed.emplace_back(f.key);
    json.Key(f.key);
    if (inv.Cleared(f.option)) {
      json.Null();
      continue;
    }
    switch (f.type) {
      case MutableField::kText: json.String(inv.Text(f.option)); break;
      case MutableField::kUrl: json.String(url); break;
      case MutableField::kList:
        json.BeginArray();
        for (const auto& item : inv.List(f.option)) json.String(item);
        json.EndArray();
        break;
      case MutableField::kInt: json.Int(*inv.Int(f.option)); break;
      case MutableField::kNumber: json.Number(*inv.Number(f.option)); break;
      case MutableField::kLabels: json.Raw(scope->empty() ? "{}" : *scope); break;
    }
  }
  json.EndObject();
  const auto after = subscriptions.Update(id, changes.str());
  if (!after) return NoSubscription(id);
  if (inv.json()) {
    Json out(std::cout);
    WriteSubscription(out, *after, false);
    out.Finish();
    return 0;
  }
  std::string names;
  for (const auto& n : changed) names += (names.empty() ? "" : ", ") + n;
  std::cout << "updated " << id << ": " << names << "\n";
  PrintSubscription(*after);
  return 0;
}

int List(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto subs = Subscriptions(db).List(inv.Text("tenant"));
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("subscriptions").BeginArray();
    for (const auto& s : subs) WriteSubscription(json, s, false);
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  if (subs.empty()) std::cout << "no subscriptions\n";
  for (const auto& s : subs) PrintSubscription(s);
  return 0;
}

int Show(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto s = Subscriptions(db).Show(id);
  if (!s) return NoSubscription(id);
  if (inv.json()) {
    Json json(std::cout);
    WriteSubscription(json, *s, true);
    json.Finish();
    return 0;
  }
  PrintSubscription(*s);
  for (const auto& [status, count] : s->deliveries_by_status) {
    std::cout << "  deliveries " << status << ": " << count << "\n";
  }
  return 0;
}

int Pause(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto state = Subscriptions(db).Pause(id, inv.Text("reason"));
  if (!state) return NoSubscription(id);
  std::cout << "paused " << id << " (" << state->reason << "); "
            << Count(state->held_deliveries, "delivery", "deliveries") << " held until it is resumed\n";
  if (state->state != "paused") std::cout << "note: it is " << DescribeState(*state) << "\n";
  return 0;
}

int Resume(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto released = Subscriptions(db).Resume(id);
  if (!released) return NoSubscription(id);
  std::cout << "resumed " << id << "; released " << Count(*released, "held delivery", "held deliveries") << "\n";
  return 0;
}

int Disable(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto state = Subscriptions(db).Disable(id, inv.Text("reason"));
  if (!state) return NoSubscription(id);
  std::cout << "disabled " << id << " (" << state->reason
            << "); no new deliveries are created and waiting ones fail when claimed; "
               "'subscription resume' re-enables it\n";
  return 0;
}

int RotateSecret(const Invocation& inv) {
  const std::string& id = inv.operand();
  const auto grace = *inv.Duration("grace");
  const Context context(inv);
  const auto box = context.MasterKey();
  if (!box) return 2;
  const auto key = MakeKey(*box, inv.Text("signature"), id);
  const std::string& secret = key.secret;
  store::admin::Connection db(context.DatabaseUrl());
  auto rotation = Subscriptions(db).RotateSecret(id, key.sealed, key.last4, grace, key.public_key);
  if (!rotation) return NoSubscription(id);
  rotation->created.public_key = key.public_key;  // written after the function's rows were read
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Field("subscription_id", id);
    if (key.public_key.empty()) {
      json.Field("secret", secret);
    } else {
      json.Field("public_key", key.public_key);
    }
    json.Key("created");
    WriteSecret(json, rotation->created);
    WriteSecrets(json, "expiring", rotation->expiring);
    WriteSecrets(json, "kept", rotation->kept);
    json.EndObject();
    json.Finish();
    return 0;
  }
  const bool immediate = grace.count() == 0;
  std::cout << "rotated the signing secret of " << id << "\n";
  PrintSecret(rotation->created, "(new)");
  if (key.public_key.empty()) {
    PrintNewSecret(secret);
  } else {
    PrintPublicKey(key.public_key);
  }
  for (const auto& s : rotation->expiring) PrintSecret(s, immediate ? "(expired now)" : "(grace period set)");
  for (const auto& s : rotation->kept) PrintSecret(s, "(keeps its earlier expiry)");
  if (!rotation->kept.empty() || (!rotation->expiring.empty() && !immediate)) {
    std::cout << "deliveries are signed with every active secret until the older ones expire\n";
  }
  return 0;
}

int RevokeSecret(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto out = Subscriptions(db).RevokeSecrets(id, inv.Text("secret-id"));
  if (out.revoked.empty()) {
    std::cout << "nothing to revoke; " << id << " has no other active secret\n";
  } else {
    std::cout << "revoked " << Count(static_cast<long long>(out.revoked.size()), "secret", "secrets") << " of " << id
              << "; deliveries are no longer signed with " << (out.revoked.size() == 1 ? "it" : "them") << ":\n";
  }
  for (const auto& s : out.revoked) PrintSecret(s, "(revoked)");
  std::cout << "active secrets of " << id << ":\n";
  PrintSecrets(out.active);
  return 0;
}

}  // namespace

std::string DescribeState(const SubscriptionState& s) {
  std::string out = s.state;
  if (!s.since.empty()) out += " since " + s.since;
  if (!s.reason.empty()) out += ": " + s.reason;
  return out;
}

void PrintState(const SubscriptionState& s) {
  std::cout << "  state:   " << DescribeState(s) << "\n"
            << "  health:  " << Count(s.consecutive_failures, "consecutive failure", "consecutive failures");
  if (!s.failing_since.empty()) std::cout << " (failing since " << s.failing_since << ")";
  std::cout << ", last success " << OrElse(s.last_success_at, "never") << ", last failure "
            << OrElse(s.last_failure_at, "never") << ", " << Count(s.held_deliveries, "held delivery", "held deliveries")
            << "\n";
  if (s.consecutive_failures > 0 && !s.last_error.empty()) std::cout << "  error:   " << s.last_error << "\n";
}

void WriteState(Json& json, const SubscriptionState& s) {
  json.BeginObject()
      .Field("state", s.state)
      .Time("since", s.since)
      .StringOrNull("reason", s.reason)
      .Field("consecutive_failures", s.consecutive_failures)
      .Time("failing_since", s.failing_since)
      .Time("last_success_at", s.last_success_at)
      .Time("last_failure_at", s.last_failure_at)
      .StringOrNull("last_error", s.last_error)
      .Field("held_deliveries", s.held_deliveries)
      .EndObject();
}

std::vector<Command> SubscriptionCommands() {
  constexpr std::string_view kTopic = "Subscriptions";
  const Option url = {.name = "url",
                      .kind = Kind::kUrl,
                      .value_name = "URL",
                      .help = "the endpoint: http(s), no user:password@ (receivers verify the signature instead); a "
                              "Unicode host is stored in its IDNA ASCII form; checked against the policy's endpoint "
                              "rules"};
  const Option events = {.name = "events",
                         .kind = Kind::kList,
                         .value_name = "TYPES",
                         .help = "event types, comma-separated: a name (order.paid), a prefix (order.*) or *"};
  const Option policy = {.name = "policy",
                         .value_name = "NAME",
                         .help = "the policy (retries, timeouts, endpoint rules) by name; it must be in the policies "
                                 "file"};
  const auto required = [](Option o) {
    o.required = true;
    return o;
  };
  const auto defaulting = [](Option o, std::string_view value) {
    o.default_value = value;
    return o;
  };
  const Option filter = {.name = "filter",
                         .value_name = "JSONPATH",
                         .help = "only events whose payload matches this jsonpath predicate, e.g. '$.amount > 100' "
                                 "(PostgreSQL's payload @@ filter, evaluated when the event is published)"};
  const Option scope = {.name = "scope",
                        .value_name = "LABELS",
                        .help = "only events whose labels contain every pair, e.g. channel=web,facility=f1"};
  const auto clearable = [](Option o) {
    o.clearable = true;
    return o;
  };
  const Option signature = {.name = "signature",
                            .kind = Kind::kChoice,
                            .value_name = "SCHEME",
                            .help = "v1: an HMAC secret (whsec_, printed once); v1a: an ed25519 key pair, the "
                                    "private key sealed, the public key (whpk_) shown",
                            .default_value = "v1",
                            .choices = {"v1", "v1a"}};
  const Option tenant_filter = {.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT",
                                .help = "only this tenant's"};
  return {
      {.topic = kTopic,
       .name = "subscription create",
       .summary = "create a subscription; prints its signing secret once",
       .description = "The secret (whsec_ + 32 random bytes in base64) is generated here, sealed with the master key "
                      "and stored only sealed; give it to the receiver, which verifies every request's "
                      "webhook-signature with it. The URL is checked as the daemon would (syntax, then the policy's "
                      "endpoint rules) and nothing is written when it is refused.",
       .options = {{.name = "tenant",
                    .kind = Kind::kIdentifier,
                    .value_name = "TENANT",
                    .help = "the tenant it belongs to (events of this tenant fan out to it)",
                    .required = true},
                   required(url),
                   required(events),
                   defaulting(policy, "default"),
                   {.name = "id", .kind = Kind::kIdentifier, .value_name = "ID",
                    .help = "its id (default: a new sub_... id)"},
                   {.name = "description", .value_name = "TEXT", .help = "what it is for"},
                   filter,
                   scope,
                   signature},
       .example = "pgcourierctl subscription create --tenant acme --url https://hooks.example.com/in \\\n"
                  "  --events 'order.*,invoice.paid' --filter '$.amount > 100' --scope channel=web,facility=f1",
       .json = true,
       .run = Create},
      {.topic = kTopic,
       .name = "subscription update",
       .operand = "ID",
       .summary = "change a subscription's URL, event types, policy, description, ordering, limits, filter or scope",
       .description = "Only the options given change (courier.update_subscription); the URL and the policy are "
                      "checked as in create.",
       .options = {url,
                   events,
                   policy,
                   {.name = "description", .value_name = "TEXT", .help = "what it is for", .clearable = true},
                   {.name = "ordering",
                    .kind = Kind::kChoice,
                    .value_name = "MODE",
                    .help = "fifo: in order per ordering key",
                    .choices = {"none", "fifo"}},
                   {.name = "ordering-key-field",
                    .value_name = "FIELD",
                    .help = "the top-level payload field that is the ordering key of events without one",
                    .clearable = true},
                   {.name = "max-in-flight",
                    .kind = Kind::kInt,
                    .value_name = "N",
                    .help = "most requests in flight to it, per daemon",
                    .min = 1,
                    .max = 1'000'000,
                    .clearable = true},
                   {.name = "rate-limit",
                    .kind = Kind::kNumber,
                    .value_name = "PER_SECOND",
                    .help = "most requests per second, per daemon",
                    .max = 1'000'000,
                    .expect = "requests per second, a number above 0 (e.g. 5 or 0.5)",
                    .clearable = true},
                   {.name = "burst",
                    .kind = Kind::kInt,
                    .value_name = "N",
                    .help = "the rate limit's token bucket size",
                    .min = 1,
                    .max = 1'000'000,
                    .clearable = true},
                   clearable(filter),
                   clearable(scope)},
       .example = "pgcourierctl subscription update sub_... --url https://hooks.example.com/v2 --max-in-flight 8\n"
                  "pgcourierctl subscription update sub_... --filter '$.amount > 100' --scope none\n"
                  "pgcourierctl subscription update sub_... --rate-limit none   # the policy's limit again",
       .json = true,
       .run = Update},
      {.topic = kTopic,
       .name = "subscription list",
       .summary = "subscriptions with state, health and active secrets",
       .options = {tenant_filter},
       .example = "pgcourierctl subscription list --tenant acme --json",
       .json = true,
       .run = List},
      {.topic = kTopic,
       .name = "subscription show",
       .operand = "ID",
       .summary = "one subscription, with its deliveries by status",
       .example = "pgcourierctl subscription show sub_...",
       .json = true,
       .run = Show},
      {.topic = kTopic,
       .name = "subscription pause",
       .operand = "ID",
       .summary = "hold its deliveries until it is resumed",
       .options = {{.name = "reason", .value_name = "TEXT", .help = "why (shown by status)",
                    .default_value = "paused by an operator"}},
       .example = "pgcourierctl subscription pause sub_... --reason 'receiver maintenance'",
       .run = Pause},
      {.topic = kTopic,
       .name = "subscription resume",
       .operand = "ID",
       .summary = "re-enable, reset its failure count, release held deliveries",
       .example = "pgcourierctl subscription resume sub_...",
       .run = Resume},
      {.topic = kTopic,
       .name = "subscription disable",
       .operand = "ID",
       .summary = "create no more deliveries; waiting ones fail when claimed",
       .options = {{.name = "reason", .value_name = "TEXT", .help = "why (shown by status)",
                    .default_value = "disabled by an operator"}},
       .example = "pgcourierctl subscription disable sub_... --reason decommissioned",
       .run = Disable},
      {.topic = kTopic,
       .name = "subscription rotate-secret",
       .operand = "ID",
       .summary = "add a signing secret (printed once); the other active ones expire after a grace period",
       .description = "Deliveries are signed with every active secret until the older ones expire, so the receiver "
                      "can switch during the grace period; --grace 0s expires them at once.",
       .options = {{.name = "grace",
                    .kind = Kind::kDuration,
                    .value_name = "DURATION",
                    .help = "how long the other active secrets keep signing (30s, 15m, 24h, 7d)",
                    .default_value = "24h"},
                   signature},
       .example = "pgcourierctl subscription rotate-secret sub_... --grace 24h\n"
                  "pgcourierctl subscription rotate-secret sub_... --signature v1a   # move to ed25519",
       .json = true,
       .run = RotateSecret},
      {.topic = kTopic,
       .name = "subscription revoke-secret",
       .operand = "ID",
       .summary = "revoke every active secret but the newest, or the one given",
       .description = "The last active secret is never revoked (rotate first).",
       .options = {{.name = "secret-id", .value_name = "SECRET_ID", .help = "only this one (whs_...)"}},
       .example = "pgcourierctl subscription revoke-secret sub_... --secret-id whs_...",
       .run = RevokeSecret},
  };
}

}  // namespace pgcourier::ctl

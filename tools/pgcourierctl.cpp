// pgcourierctl: the operator CLI. Every database statement lives in store/;
// this file parses arguments and prints.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

#include "retry/text.hpp"
#include "signing/secret_box.hpp"
#include "signing/webhook_signature.hpp"
#include "store/admin.hpp"
#include "store/store.hpp"

namespace {

using namespace pgcourier;

constexpr const char* kUsage = R"(usage: pgcourierctl [--database-url URL] COMMAND ...

Commands:
  migrate                                   apply the SQL migrations this build ships
  schema                                    show applied and missing migrations
  keygen --out FILE                         write a new random master key (mode 0600)
  subscription create --tenant T --url U --events 'order.*,invoice.paid'
                      [--policy NAME] [--id sub_x] [--description TEXT]
                                            create a subscription; prints its signing secret once
  subscription list [--tenant T]            subscriptions with state, health and active secrets
  subscription show ID                      the same for one, with its deliveries by status
  subscription pause ID [--reason TEXT]     hold its deliveries until it is resumed
  subscription resume ID                    re-enable, reset its failure count, release held deliveries
  subscription disable ID [--reason TEXT]   create no more deliveries; waiting ones fail when claimed
  subscription rotate-secret ID [--grace 24h]
                                            add a signing secret (printed once); the other active ones
                                            expire after the grace period (30s, 15m, 24h, 7d) and
                                            deliveries are signed with all of them until then
  subscription revoke-secret ID [--secret-id whs_...]
                                            revoke every active secret but the newest, or the one given
  publish --tenant T --type EVENT_TYPE [--payload JSON] [--idempotency-key K] [--trace-id ID]
  replay [--tenant T] [--subscription S] [--event-type E] [--since TS] [--until TS]
         [--status dead_lettered,failed] [--include-delivered] [--dry-run]
                                            re-queue finished deliveries (created in [since, until))
                                            with a fresh attempt budget
  redeliver --subscription S (--from-event EVT | --since TS) [--limit N]
                                            send the subscription's stored events again, in order,
                                            from a cursor; prints the cursor to continue from
  inspect DLV_ID                            one delivery and its attempts
  status [--recent N]                       deliveries by status, subscriptions that are paused,
                                            disabled or failing, and the N most recent deliveries

TS is PostgreSQL timestamptz input, e.g. 2026-11-22T05:00:00Z or '2026-11-22 06:00+01'.
The database is --database-url, else DATABASE_URL, else the libpq environment (PGHOST...).
The master key (for subscription create and rotate-secret) is --master-key-file, else
PGCOURIER_MASTER_KEY_FILE.
)";

// Options that take no value.
const std::set<std::string, std::less<>> kFlags = {"help", "dry-run", "include-delivered"};
// Options every command accepts.
const std::set<std::string, std::less<>> kGlobalOptions = {"help", "database-url", "master-key-file"};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string, std::less<>> options;
  std::vector<std::string> operands;  // the positional arguments after the command's name

  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  bool Has(const std::string& name) const { return options.count(name) > 0; }
};

std::optional<Args> Parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const auto eq = a.find('=');
      const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (kFlags.count(name) > 0) {
        if (eq != std::string::npos) {
          std::cerr << "pgcourierctl: --" << name << " takes no value\n";
          return std::nullopt;
        }
        args.options[name] = "";
      } else if (eq != std::string::npos) {
        args.options[name] = a.substr(eq + 1);
      } else if (i + 1 < argc) {
        args.options[name] = argv[++i];
      } else {
        std::cerr << "pgcourierctl: " << a << " needs a value\n";
        return std::nullopt;
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

std::string DatabaseUrl(const Args& args) {
  if (args.Has("database-url")) return args.Get("database-url");
  if (const char* env = std::getenv("DATABASE_URL")) return env;
  return "";
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
  }
  return out;
}

int Require(const Args& args, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (!args.Has(n) || args.Get(n).empty()) {
      std::cerr << "pgcourierctl: --" << n << " is required\n";
      return 2;
    }
  }
  return 0;
}

// Exit codes: 1 when the operation failed, 2 when the command line is wrong.
int Fail(const std::string& message) {
  std::cerr << "pgcourierctl: " << message << "\n";
  return 1;
}
int UsageError(const std::string& message) {
  std::cerr << "pgcourierctl: " << message << "\n";
  return 2;
}

// A whole decimal number >= min, or nullopt.
std::optional<long long> ParseNumber(std::string_view text, long long min) {
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min) return std::nullopt;
  return value;
}

// "30s", "15m", "24h", "7d".
std::optional<std::chrono::seconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  long long unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return std::nullopt;
  }
  const auto count = ParseNumber(text.substr(0, text.size() - 1), 0);
  constexpr long long kMaxSeconds = 100LL * 366 * 86400;
  if (!count || *count > kMaxSeconds / unit) return std::nullopt;
  return std::chrono::seconds(*count * unit);
}

// "1 delivery", "3 deliveries".
std::string Count(long long n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string OrElse(const std::string& value, const char* fallback) { return value.empty() ? fallback : value; }

// ---- printing ----

void PrintSecret(const store::SecretInfo& secret, std::string_view note = "") {
  std::cout << "  secret:  " << secret.id << "  whsec_..." << secret.last4 << "  created " << secret.created_at;
  if (!secret.expires_at.empty()) std::cout << "  expires " << secret.expires_at;
  if (!note.empty()) std::cout << "  " << note;
  std::cout << "\n";
}

void PrintSecrets(const std::vector<store::SecretInfo>& secrets) {
  for (const auto& secret : secrets) PrintSecret(secret);
  if (secrets.empty()) std::cout << "  secret:  none active (add one with 'subscription rotate-secret')\n";
}

// "active", or "paused since T: reason".
std::string DescribeState(const store::SubscriptionState& s) {
  std::string out = s.state;
  if (!s.since.empty()) out += " since " + s.since;
  if (!s.reason.empty()) out += ": " + s.reason;
  return out;
}

// The state and health lines of a subscription, and its last error while it is failing.
void PrintState(const store::SubscriptionState& s) {
  std::cout << "  state:   " << DescribeState(s) << "\n"
            << "  health:  " << Count(s.consecutive_failures, "consecutive failure", "consecutive failures");
  if (!s.failing_since.empty()) std::cout << " (failing since " << s.failing_since << ")";
  std::cout << ", last success " << OrElse(s.last_success_at, "never") << ", last failure "
            << OrElse(s.last_failure_at, "never") << ", " << Count(s.held_deliveries, "held delivery", "held deliveries")
            << "\n";
  if (s.consecutive_failures > 0 && !s.last_error.empty()) std::cout << "  error:   " << s.last_error << "\n";
}

void PrintSubscription(const store::SubscriptionInfo& s) {
  std::cout << s.id << "  tenant=" << s.tenant_id << "  " << s.state.state << "  policy=" << s.policy << "\n"
            << "  url:     " << retry::RedactUrls(s.url) << "\n"
            << "  events:  " << s.event_types << "\n"
            << "  created: " << s.created_at << "\n";
  PrintState(s.state);
  PrintSecrets(s.secrets);
}

void PrintNewSecret(const std::string& secret) {
  std::cout << "signing secret (shown once, store it with the receiver): " << secret << "\n";
}

// ---- commands ----

int CmdMigrate(const Args& args) {
  const auto applied = store::Migrate(DatabaseUrl(args));
  if (applied.empty()) std::cout << "schema is up to date\n";
  for (const auto& m : applied) std::cout << "applied " << m << "\n";
  return 0;
}

int CmdSchema(const Args& args) {
  store::Store s(DatabaseUrl(args));
  const auto status = s.CheckSchema();
  std::cout << "schema version " << status.current_version << " (this build needs " << status.required_version
            << ")\n";
  for (const auto& m : status.missing) std::cout << "missing " << m << "\n";
  return status.missing.empty() ? 0 : 1;
}

int CmdKeygen(const Args& args) {
  if (int rc = Require(args, {"out"})) return rc;
  const std::string path = args.Get("out");
  if (std::filesystem::exists(path)) {
    return Fail(path + " already exists; not overwriting a master key");
  }
  const mode_t old_mask = umask(077);
  std::ofstream out(path);
  umask(old_mask);
  out << signing::SecretBox::GenerateKeyText() << "\n";
  if (!out) return Fail("cannot write " + path);
  std::cout << "wrote a new master key to " << path << "\n";
  return 0;
}

// The master key that seals signing secrets; nullopt (after saying so) when none is configured.
std::optional<signing::SecretBox> LoadMasterKey(const Args& args) {
  std::string path = args.Get("master-key-file");
  if (path.empty()) {
    if (const char* env = std::getenv("PGCOURIER_MASTER_KEY_FILE")) path = env;
  }
  if (path.empty()) {
    std::cerr << "pgcourierctl: a master key is needed to store the signing secret: "
                 "--master-key-file FILE or PGCOURIER_MASTER_KEY_FILE (create one with 'pgcourierctl keygen')\n";
    return std::nullopt;
  }
  return signing::SecretBox::FromKeyFile(path);
}

// A new signing secret's (sealed, last4), bound to its subscription.
std::pair<std::string, std::string> SealSecret(const signing::SecretBox& box, const std::string& secret,
                                               const std::string& subscription_id) {
  return {box.Seal(secret, subscription_id), secret.substr(secret.size() - 4)};
}

int NoSubscription(const std::string& id) { return Fail("no subscription " + id); }

int CmdSubscriptionCreate(const Args& args) {
  if (int rc = Require(args, {"tenant", "url", "events"})) return rc;
  const auto box = LoadMasterKey(args);
  if (!box) return 2;
  store::NewSubscription sub;
  sub.id = args.Get("id");
  sub.tenant_id = args.Get("tenant");
  sub.url = args.Get("url");
  sub.event_types = SplitList(args.Get("events"));
  sub.policy = args.Get("policy", "default");
  sub.description = args.Get("description");
  const std::string secret = signing::GenerateWebhookSecret(32);
  store::AdminStore admin(DatabaseUrl(args));
  const std::string id =
      admin.CreateSubscription(sub, [&](const std::string& sub_id) { return SealSecret(*box, secret, sub_id); });
  std::cout << "created subscription " << id << "\n";
  PrintNewSecret(secret);
  return 0;
}

int CmdSubscriptionList(const Args& args) {
  store::AdminStore admin(DatabaseUrl(args));
  const auto subs = admin.ListSubscriptions(args.Get("tenant"));
  if (subs.empty()) std::cout << "no subscriptions\n";
  for (const auto& s : subs) PrintSubscription(s);
  return 0;
}

int CmdSubscriptionShow(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto s = admin.ShowSubscription(id);
  if (!s) return NoSubscription(id);
  PrintSubscription(*s);
  for (const auto& [status, count] : s->deliveries_by_status) {
    std::cout << "  deliveries " << status << ": " << count << "\n";
  }
  return 0;
}

int CmdSubscriptionPause(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto state = admin.PauseSubscription(id, args.Get("reason"));
  if (!state) return NoSubscription(id);
  std::cout << "paused " << id << " (" << state->reason << "); "
            << Count(state->held_deliveries, "delivery", "deliveries") << " held until it is resumed\n";
  if (state->state != "paused") std::cout << "note: it is " << DescribeState(*state) << "\n";
  return 0;
}

int CmdSubscriptionResume(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto released = admin.ResumeSubscription(id);
  if (!released) return NoSubscription(id);
  std::cout << "resumed " << id << "; released " << Count(*released, "held delivery", "held deliveries") << "\n";
  return 0;
}

int CmdSubscriptionDisable(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto state = admin.DisableSubscription(id, args.Get("reason"));
  if (!state) return NoSubscription(id);
  std::cout << "disabled " << id << " (" << state->reason
            << "); no new deliveries are created and waiting ones fail when claimed; "
               "'subscription resume' re-enables it\n";
  return 0;
}

int CmdSubscriptionRotateSecret(const Args& args) {
  const std::string& id = args.operands[0];
  const auto grace = ParseDuration(args.Get("grace", "24h"));
  if (!grace) return UsageError("--grace takes a duration such as 30s, 15m, 24h or 7d");
  const auto box = LoadMasterKey(args);
  if (!box) return 2;
  const std::string secret = signing::GenerateWebhookSecret(32);
  const auto [sealed, last4] = SealSecret(*box, secret, id);
  store::AdminStore admin(DatabaseUrl(args));
  const auto rotation = admin.RotateSecret(id, sealed, last4, *grace);
  if (!rotation) return NoSubscription(id);
  const bool immediate = grace->count() == 0;
  std::cout << "rotated the signing secret of " << id << "\n";
  PrintSecret(rotation->created, "(new)");
  PrintNewSecret(secret);
  for (const auto& s : rotation->expiring) PrintSecret(s, immediate ? "(expired now)" : "(grace period set)");
  for (const auto& s : rotation->kept) PrintSecret(s, "(keeps its earlier expiry)");
  if (!rotation->kept.empty() || (!rotation->expiring.empty() && !immediate)) {
    std::cout << "deliveries are signed with every active secret until the older ones expire\n";
  }
  return 0;
}

int CmdSubscriptionRevokeSecret(const Args& args) {
  using Result = store::SecretRevocation::Result;
  const std::string& id = args.operands[0];
  const std::string secret_id = args.Get("secret-id");
  store::AdminStore admin(DatabaseUrl(args));
  const auto out = admin.RevokeSecrets(id, secret_id);
  switch (out.result) {
    case Result::kNoSubscription:
      return NoSubscription(id);
    case Result::kUnknownSecret:
      return Fail(id + " has no secret " + secret_id);
    case Result::kNotActive:
      return Fail("secret " + secret_id + " of " + id + " is already revoked or expired");
    case Result::kLastActiveSecret:
      return Fail("refusing to revoke " + secret_id + ": it is the last active secret of " + id +
                  " (run 'subscription rotate-secret " + id + "' first)");
    case Result::kRevoked:
      break;
  }
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

int CmdPublish(const Args& args) {
  if (int rc = Require(args, {"tenant", "type"})) return rc;
  store::AdminStore admin(DatabaseUrl(args));
  std::cout << admin.Publish(args.Get("tenant"), args.Get("type"), args.Get("payload", "{}"),
                             args.Get("idempotency-key"), args.Get("trace-id"))
            << "\n";
  return 0;
}

int CmdReplay(const Args& args) {
  store::ReplayFilter filter;
  filter.tenant_id = args.Get("tenant");
  filter.subscription_id = args.Get("subscription");
  filter.event_type = args.Get("event-type");
  filter.since = args.Get("since");
  filter.until = args.Get("until");
  filter.statuses = SplitList(args.Get("status"));
  filter.include_delivered = args.Has("include-delivered");
  filter.dry_run = args.Has("dry-run");
  if (args.Has("status") && filter.statuses.empty()) return UsageError("--status needs at least one status");
  for (const auto& status : filter.statuses) {
    if (status != "dead_lettered" && status != "failed" && status != "delivered") {
      return UsageError("--status takes dead_lettered, failed or delivered, not '" + status + "'");
    }
  }
  store::AdminStore admin(DatabaseUrl(args));
  const int n = admin.ReplayDeliveries(filter);
  std::cout << (filter.dry_run ? "would replay " : "replayed ") << Count(n, "delivery", "deliveries") << "\n";
  return 0;
}

int CmdRedeliver(const Args& args) {
  if (int rc = Require(args, {"subscription"})) return rc;
  store::RedeliverRequest request;
  request.subscription_id = args.Get("subscription");
  request.from_event = args.Get("from-event");
  request.since = args.Get("since");
  if (request.from_event.empty() == request.since.empty()) {
    return UsageError(request.from_event.empty() ? "redeliver needs --from-event EVT or --since TS"
                                                 : "redeliver takes --from-event or --since, not both");
  }
  if (args.Has("limit")) {
    const auto limit = ParseNumber(args.Get("limit"), 1);
    if (!limit || *limit > 1'000'000) return UsageError("--limit takes a number from 1 to 1000000");
    request.max_events = static_cast<int>(*limit);
  }
  store::AdminStore admin(DatabaseUrl(args));
  const auto result = admin.RedeliverEvents(request);
  std::cout << "re-queued " << Count(result.events_processed, "event", "events") << "; ";
  if (result.next_cursor.empty()) {
    std::cout << "nothing after the cursor\n";
  } else {
    std::cout << "continue with --from-event " << result.next_cursor << "\n";
  }
  return 0;
}

// One line of the attempt table; the header uses the same layout.
void PrintAttemptLine(const std::string& attempt, const std::string& started, const std::string& duration,
                      const std::string& http, const std::string& outcome, const std::string& error_class,
                      const std::string& retryable, const std::string& summary) {
  std::printf("  %3s  %-30s %11s %5s  %-20s %-19s %-9s  %s\n", attempt.c_str(), started.c_str(), duration.c_str(),
              http.c_str(), outcome.c_str(), error_class.c_str(), retryable.c_str(), summary.c_str());
}

int CmdInspect(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto d = admin.InspectDelivery(id);
  if (!d) return Fail("no delivery " + id);
  std::string next = d->next_attempt_at;
  if (d->status == "delivered" || d->status == "failed" || d->status == "dead_lettered") {
    next = "none (finished " + d->completed_at + ")";
  } else if (d->status == "delivering") {
    next = "in flight now";
  } else if (next == "infinity") {
    next = "held until the subscription is resumed";
  }
  std::cout << "delivery " << d->id << "  tenant=" << d->tenant_id << "\n"
            << "  status:       " << d->status << " after " << Count(d->attempts, "attempt", "attempts") << "\n"
            << "  subscription: " << d->subscription_id << "  " << retry::RedactUrls(d->url) << "\n"
            << "  event:        " << d->event_id << "  " << d->event_type << "\n"
            << "  created:      " << d->created_at << "  (updated " << d->updated_at << ")\n"
            << "  next attempt: " << next << "\n"
            << "  lease:        "
            << (d->lease_owner.empty() ? "none" : d->lease_owner + " until " + d->lease_expires_at) << "\n"
            << "  last status:  " << OrElse(d->last_status_code, "-") << "\n"
            << "  last error:   " << OrElse(d->last_error, "-") << "\n";
  if (d->timeline.empty()) {
    std::cout << "no attempts yet\n";
    return 0;
  }
  std::cout << "attempts:\n";
  PrintAttemptLine("#", "started", "duration ms", "http", "outcome", "error class", "retryable", "summary");
  char duration[32];
  for (const auto& a : d->timeline) {
    std::snprintf(duration, sizeof duration, "%.1f", a.duration_ms);
    PrintAttemptLine(std::to_string(a.attempt), a.started_at, duration, OrElse(a.status_code, "-"), a.outcome,
                     OrElse(a.error_class, "-"), a.retryable ? "yes" : "no", OrElse(a.error_summary, "-"));
  }
  return 0;
}

int CmdStatus(const Args& args) {
  const auto recent = ParseNumber(args.Get("recent", "0"), 0);
  if (!recent || *recent > 100'000) return UsageError("--recent takes a number from 0 to 100000");
  store::AdminStore admin(DatabaseUrl(args));
  const auto rows = admin.Status();
  std::printf("%-16s %12s %10s  %s\n", "status", "deliveries", "due now", "oldest due");
  for (const auto& r : rows) {
    std::printf("%-16s %12lld %10lld  %s\n", r.status.c_str(), r.deliveries, r.due_now, r.oldest_due_at.c_str());
  }
  if (rows.empty()) std::printf("(no deliveries)\n");
  const auto attention = admin.SubscriptionsNeedingAttention();
  if (!attention.empty()) {
    std::cout << "\nsubscriptions paused, disabled or failing:\n";
    for (const auto& s : attention) {
      std::cout << s.subscription_id << "  tenant=" << s.tenant_id << "  " << retry::RedactUrls(s.url) << "\n";
      PrintState(s);
    }
  }
  if (*recent > 0) {
    std::printf("\n%-34s %-18s %-16s %8s %5s  %s\n", "delivery", "event type", "status", "attempts", "http",
                "last error");
    for (const auto& d : admin.Recent(static_cast<int>(*recent))) {
      std::printf("%-34s %-18s %-16s %8d %5s  %s\n", d.id.c_str(), d.event_type.c_str(), d.status.c_str(),
                  d.attempts, d.last_status_code.c_str(), d.last_error.c_str());
    }
  }
  return 0;
}

int CmdVersion(const Args&) {
  std::cout << "pgcourierctl " << PGCOURIER_VERSION << "\n";
  return 0;
}

struct Command {
  std::string_view name;                   // "status", "subscription pause"
  std::string_view operand;                // the one positional argument it needs ("ID"), or empty for none
  std::vector<std::string_view> options;   // accepted besides kGlobalOptions
  int (*run)(const Args&);
};

const std::vector<Command> kCommands = {
    {"migrate", "", {}, CmdMigrate},
    {"schema", "", {}, CmdSchema},
    {"keygen", "", {"out"}, CmdKeygen},
    {"subscription create", "", {"tenant", "url", "events", "policy", "id", "description"}, CmdSubscriptionCreate},
    {"subscription list", "", {"tenant"}, CmdSubscriptionList},
    {"subscription show", "ID", {}, CmdSubscriptionShow},
    {"subscription pause", "ID", {"reason"}, CmdSubscriptionPause},
    {"subscription resume", "ID", {}, CmdSubscriptionResume},
    {"subscription disable", "ID", {"reason"}, CmdSubscriptionDisable},
    {"subscription rotate-secret", "ID", {"grace"}, CmdSubscriptionRotateSecret},
    {"subscription revoke-secret", "ID", {"secret-id"}, CmdSubscriptionRevokeSecret},
    {"publish", "", {"tenant", "type", "payload", "idempotency-key", "trace-id"}, CmdPublish},
    {"replay", "",
     {"tenant", "subscription", "event-type", "since", "until", "status", "include-delivered", "dry-run"},
     CmdReplay},
    {"redeliver", "", {"subscription", "from-event", "since", "limit"}, CmdRedeliver},
    {"inspect", "DLV_ID", {}, CmdInspect},
    {"status", "", {"recent"}, CmdStatus},
    {"version", "", {}, CmdVersion},
};

// Finds the command named by the first positional arguments, and checks its
// operands and options. Prints what is wrong and returns nullptr if anything is.
const Command* Resolve(Args& args) {
  std::string name = args.positional[0];
  std::size_t words = 1;
  if (name == "subscription") {
    if (args.positional.size() < 2) {
      std::cerr << "pgcourierctl: subscription needs create, list, show, pause, resume, disable, "
                   "rotate-secret or revoke-secret\n";
      return nullptr;
    }
    name += " " + args.positional[1];
    words = 2;
  }
  const auto it = std::find_if(kCommands.begin(), kCommands.end(), [&](const Command& c) { return c.name == name; });
  if (it == kCommands.end()) {
    std::cerr << "pgcourierctl: unknown command '" << name << "'\n" << kUsage;
    return nullptr;
  }
  args.operands.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(words), args.positional.end());
  const std::size_t wanted = it->operand.empty() ? 0 : 1;
  if (args.operands.size() < wanted) {
    std::cerr << "pgcourierctl: " << name << " needs " << it->operand << "\n";
    return nullptr;
  }
  if (args.operands.size() > wanted) {
    std::cerr << "pgcourierctl: " << name << ": unexpected argument '" << args.operands[wanted] << "'\n";
    return nullptr;
  }
  for (const auto& [option, value] : args.options) {
    if (kGlobalOptions.count(option) == 0 &&
        std::find(it->options.begin(), it->options.end(), option) == it->options.end()) {
      std::cerr << "pgcourierctl: " << name << " does not take --" << option << "\n";
      return nullptr;
    }
  }
  return &*it;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = Parse(argc, argv);
  if (!args) return 2;
  if (args->positional.empty() || args->Has("help")) {
    std::cout << kUsage;
    return args->positional.empty() && !args->Has("help") ? 2 : 0;
  }
  const Command* command = Resolve(*args);
  if (!command) return 2;
  try {
    return command->run(*args);
  } catch (const std::exception& e) {
    std::cerr << "pgcourierctl " << command->name << ": " << e.what() << "\n";
    return 1;
  }
}

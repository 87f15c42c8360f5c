// pgcourierctl: the operator CLI. Every database statement lives in store/;
// this file parses arguments and prints.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

#include "base/file.hpp"
#include "retry/text.hpp"
#include "signing/secret_box.hpp"
#include "signing/webhook_signature.hpp"
#include "store/admin.hpp"
#include "store/migrate.hpp"
#include "store/session.hpp"

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
                                            disabled or failing, runs by state, connections that
                                            need attention, and the N most recent deliveries

Integration runs:
  connection create --tenant T --provider P --base-url URL
                    [--auth none|api_key|bearer|basic|oauth2_client_credentials] [--credential CRED_ID]
                    [--api-key-header H] [--token-url U] [--client-id C] [--scopes 'a b']
                    [--health-check 'GET /health'] [--expect-status N] [--policy NAME]
                    [--status active|pending] [--rate-limit PER_SECOND] [--burst N] [--max-in-flight N]
                    [--id conn_x]
                                            create a connection; prints its id. Every --auth but none
                                            needs --credential (of the same tenant);
                                            oauth2_client_credentials also --token-url and --client-id
  connection list [--tenant T]              connections with status, health and runs waiting
  connection show ID                        one connection: settings, health, credential version and
                                            expiry, open failures
  connection retire ID                      stop using it: its pending runs become poison when claimed
  connection activate ID                    make a pending or degraded connection active again
  credential create --tenant T --from-file F [--name N] [--expires-at TS] [--id cred_x]
                                            seal the secret in F with the master key; prints the id
  credential rotate CRED --from-file F [--expires-at TS]
                                            store the secret in F as the next version, rotating; the
                                            daemon verifies it with the health check of a connection
                                            using it, then activates it. Prints the version number
  credential show CRED                      status, versions and fingerprints, connections using it
  credential list [--tenant T]              credentials, the soonest to expire first
  run enqueue --tenant T --connection C --operation OP [--method M] [--path P] [--body TEXT]
              [--headers JSON_OBJECT] [--idempotency-key K] [--trace-id ID] [--external-ref /json/pointer]
                                            queue a run (courier.enqueue_run); prints its id
  run list [--tenant T] [--status S] [--limit N]
                                            the N (default 50) most recent runs
  run show ID                               one run, its attempts and its failures
  run replay ID                             run a failed or dead-lettered run again with a fresh
                                            attempt budget; a completed run never runs again

A credential file (or /dev/stdin) holds the secret alone; one trailing newline is dropped. By
--auth mode: api_key: the key; bearer: the token; basic: user:password;
oauth2_client_credentials: the client secret. No command prints a secret back; show and list
give its fingerprint.

TS is PostgreSQL timestamptz input, e.g. 2026-11-22T05:00:00Z or '2026-11-22 06:00+01'.
The database is --database-url, else DATABASE_URL, else the libpq environment (PGHOST...).
The master key (for subscription create and rotate-secret, credential create and rotate) is
--master-key-file, else PGCOURIER_MASTER_KEY_FILE.
)";

// A credential is a key, a token or a client secret: a few hundred bytes at most.
constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;

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
  store::Session s(store::SessionOptions{DatabaseUrl(args), {}});
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
    std::cerr << "pgcourierctl: a master key is needed to seal the secret: "
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

// ---- integration runs ----

// Rows (the first is the header) in columns as wide as their widest cell, two spaces apart.
using Table = std::vector<std::vector<std::string>>;

void PrintTable(const Table& rows, std::string_view indent = "") {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line(indent);
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

std::string Dash(const std::string& value) { return OrElse(value, "-"); }

bool HasControl(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// An absolute http(s) URL with a host.
bool IsHttpUrl(std::string_view url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.substr(0, scheme.size()) != scheme) continue;
    const auto host_end = url.find_first_of("/?#", scheme.size());
    return host_end != scheme.size() && scheme.size() < url.size() && url.find(' ') == std::string_view::npos &&
           !HasControl(url);
  }
  return false;
}

// "POST", "get": an HTTP method, upper-cased; nullopt when it is not letters.
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

bool IsPath(std::string_view path) {
  return !path.empty() && path[0] == '/' && path.find(' ') == std::string_view::npos && !HasControl(path);
}

// Reads --name, when given, as a whole number from min to max. Returns what is wrong, or "".
std::string ReadInt(const Args& args, const std::string& name, long long min, long long max, std::optional<int>& out) {
  if (!args.Has(name)) return "";
  const auto n = ParseNumber(args.Get(name), min);
  if (!n || *n > max) {
    return "--" + name + " takes a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  }
  out = static_cast<int>(*n);
  return "";
}

const std::vector<std::string_view> kAuthModes = {"none", "api_key", "bearer", "basic", "oauth2_client_credentials"};

// --auth and what goes with it. Returns what is wrong, or "".
std::string ReadConnectionAuth(const Args& args, store::NewConnection& c) {
  c.auth_mode = args.Get("auth", "none");
  c.credential_id = args.Get("credential");
  c.api_key_header = args.Get("api-key-header");
  c.token_url = args.Get("token-url");
  c.client_id = args.Get("client-id");
  c.scopes = args.Get("scopes");
  if (std::find(kAuthModes.begin(), kAuthModes.end(), c.auth_mode) == kAuthModes.end()) {
    return "--auth takes none, api_key, bearer, basic or oauth2_client_credentials, not '" + c.auth_mode + "'";
  }
  const bool oauth2 = c.auth_mode == "oauth2_client_credentials";
  if (c.auth_mode == "none" && !c.credential_id.empty()) return "--credential needs an --auth mode other than none";
  if (c.auth_mode != "none" && c.credential_id.empty()) return "--auth " + c.auth_mode + " needs --credential CRED_ID";
  if (!c.api_key_header.empty() && c.auth_mode != "api_key") return "--api-key-header goes with --auth api_key";
  if (!oauth2 && (args.Has("token-url") || args.Has("client-id") || args.Has("scopes"))) {
    return "--token-url, --client-id and --scopes go with --auth oauth2_client_credentials";
  }
  if (oauth2 && (c.token_url.empty() || c.client_id.empty())) {
    return "--auth oauth2_client_credentials needs --token-url and --client-id";
  }
  if (oauth2 && !IsHttpUrl(c.token_url)) return "--token-url takes an absolute http:// or https:// URL";
  return "";
}

// The health check, status and limits. Returns what is wrong, or "".
std::string ReadConnectionSettings(const Args& args, store::NewConnection& c) {
  if (!IsHttpUrl(c.base_url)) return "--base-url takes an absolute http:// or https:// URL";
  if (args.Has("health-check")) {
    const std::string check = args.Get("health-check");
    const auto space = check.find(' ');
    const auto method = HttpMethod(std::string_view(check).substr(0, space));
    if (space == std::string::npos || !method || !IsPath(check.substr(space + 1))) {
      return "--health-check takes 'METHOD /path', e.g. 'GET /health'";
    }
    c.health_check_method = *method;
    c.health_check_path = check.substr(space + 1);
  }
  c.status = args.Get("status", "active");
  if (c.status != "active" && c.status != "pending") return "--status takes active or pending";
  if (args.Has("rate-limit")) {
    const std::string text = args.Get("rate-limit");
    double rate = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), rate);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !(rate > 0) || rate > 1e6) {
      return "--rate-limit takes requests per second, a number above 0 (e.g. 5 or 0.5)";
    }
    c.rate_limit_per_second = rate;
  }
  for (const auto& problem : {ReadInt(args, "expect-status", 100, 599, c.expected_status),
                              ReadInt(args, "burst", 1, 1'000'000, c.rate_limit_burst),
                              ReadInt(args, "max-in-flight", 1, 1'000'000, c.max_in_flight)}) {
    if (!problem.empty()) return problem;
  }
  if (c.expected_status && c.health_check_path.empty()) return "--expect-status goes with --health-check";
  return "";
}

// Why a command about credential `id` was refused; exit 1.
int Refused(store::Refusal refusal, const std::string& detail, const std::string& id) {
  using store::Refusal;
  switch (refusal) {
    case Refusal::kNone: return 0;
    case Refusal::kNotFound: return Fail("no credential " + id);
    case Refusal::kOtherTenant:
      return Fail("credential " + id + " belongs to tenant " + detail +
                  "; a connection uses a credential of its own tenant");
    case Refusal::kRevoked: return Fail("credential " + id + " is revoked");
    case Refusal::kRotating:
      return Fail("refusing to rotate " + id + ": version " + detail +
                  " is already rotating (the daemon verifies it with a health check, then activates it or "
                  "marks it failed)");
    case Refusal::kSameSecret:
      return Fail("refusing to rotate " + id + ": the file holds the same secret as the active version (" + detail +
                  ")");
    case Refusal::kExpiryPast: return Fail("--expires-at is not in the future");
  }
  return 1;
}

int NoConnection(const std::string& id) { return Fail("no connection " + id); }

int CmdConnectionCreate(const Args& args) {
  if (int rc = Require(args, {"tenant", "provider", "base-url"})) return rc;
  store::NewConnection c;
  c.id = args.Get("id");
  c.tenant_id = args.Get("tenant");
  c.provider = args.Get("provider");
  c.base_url = args.Get("base-url");
  c.policy = args.Get("policy", "default");
  std::string problem = ReadConnectionAuth(args, c);
  if (problem.empty()) problem = ReadConnectionSettings(args, c);
  if (!problem.empty()) return UsageError(problem);
  store::AdminStore admin(DatabaseUrl(args));
  const auto created = admin.CreateConnection(c);
  if (created.refusal != store::Refusal::kNone) return Refused(created.refusal, created.detail, c.credential_id);
  std::cout << created.value << "\n";
  return 0;
}

std::string LastChecked(const store::ConnectionInfo& c) { return OrElse(c.last_checked_at, "never"); }

int CmdConnectionList(const Args& args) {
  store::AdminStore admin(DatabaseUrl(args));
  const auto connections = admin.ListConnections(args.Get("tenant"));
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
std::string DescribeAuth(const store::ConnectionInfo& c) {
  if (c.credential_id.empty()) return c.auth_mode;
  std::string out = c.auth_mode + " with credential " + c.credential_id + " version " + Dash(c.credential_version);
  return out + (c.credential_expires_at.empty() ? ", does not expire" : ", expires " + c.credential_expires_at);
}

std::string DescribeLimits(const store::ConnectionInfo& c) {
  std::string out;
  if (!c.rate_limit_per_second.empty()) out += c.rate_limit_per_second + " requests/s, ";
  if (!c.rate_limit_burst.empty()) out += "burst " + c.rate_limit_burst + ", ";
  if (!c.max_in_flight.empty()) out += c.max_in_flight + " in flight at most, ";
  return out.empty() ? "none" : out.substr(0, out.size() - 2);
}

int CmdConnectionShow(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto c = admin.ShowConnection(id);
  if (!c) return NoConnection(id);
  std::cout << "connection " << c->id << "  tenant=" << c->tenant_id << "  provider=" << c->provider << "\n"
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
            << (c->health_check.empty() ? "none (health stays unknown)"
                                        : c->health_check + " expecting " + OrElse(c->expected_status, "any 2xx"))
            << "\n"
            << "  policy:        " << c->policy << "\n"
            << "  limits:        " << DescribeLimits(*c) << "\n"
            << "  runs waiting:  " << c->runs_waiting << "\n"
            << "  open failures: " << c->open_failures << "\n"
            << "  created:       " << c->created_at << "  (updated " << c->updated_at << ")\n";
  return 0;
}

int CmdConnectionRetire(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto change = admin.RetireConnection(id);
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

int CmdConnectionActivate(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto change = admin.ActivateConnection(id);
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

// The secret a file holds: all of it but one trailing newline (LF or CRLF).
// nullopt, after saying why, when it cannot be read or holds no one-line secret.
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

// A credential version's (sealed secret, fingerprint), bound to its credential.
std::pair<std::string, std::string> SealCredential(const signing::SecretBox& box, const std::string& secret,
                                                   const std::string& credential_id) {
  return {box.Seal(secret, credential_id), box.Fingerprint(secret)};
}

int CmdCredentialCreate(const Args& args) {
  if (int rc = Require(args, {"tenant", "from-file"})) return rc;
  const auto box = LoadMasterKey(args);
  if (!box) return 2;
  const auto secret = ReadSecretFile(args.Get("from-file"));
  if (!secret) return 1;
  const store::NewCredential credential{.id = args.Get("id"),
                                        .tenant_id = args.Get("tenant"),
                                        .name = args.Get("name"),
                                        .expires_at = args.Get("expires-at")};
  store::AdminStore admin(DatabaseUrl(args));
  const auto created =
      admin.CreateCredential(credential, [&](const std::string& id) { return SealCredential(*box, *secret, id); });
  if (created.refusal != store::Refusal::kNone) return Refused(created.refusal, created.detail, credential.id);
  std::cout << created.value << "\n";
  return 0;
}

int CmdCredentialRotate(const Args& args) {
  if (int rc = Require(args, {"from-file"})) return rc;
  const std::string& id = args.operands[0];
  const auto box = LoadMasterKey(args);
  if (!box) return 2;
  const auto secret = ReadSecretFile(args.Get("from-file"));
  if (!secret) return 1;
  const auto [sealed, fingerprint] = SealCredential(*box, *secret, id);
  store::AdminStore admin(DatabaseUrl(args));
  const auto rotated = admin.RotateCredential(id, sealed, fingerprint, args.Get("expires-at"));
  if (rotated.refusal != store::Refusal::kNone) return Refused(rotated.refusal, rotated.detail, id);
  std::cout << rotated.value << "\n";
  return 0;
}

std::string DescribeExpiry(const store::CredentialInfo& c) {
  return c.expires_at.empty() ? "does not expire" : "expires " + c.expires_at + " (" + c.expires_in + ")";
}

int CmdCredentialShow(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto detail = admin.ShowCredential(id);
  if (!detail) return Fail("no credential " + id);
  const auto& c = detail->credential;
  std::cout << "credential " << c.id << "  tenant=" << c.tenant_id << "  name=" << Dash(c.name) << "  " << c.status
            << "\n"
            << "  active:  "
            << (c.active_version.empty()
                    ? "none"
                    : "version " + c.active_version + "  " + c.fingerprint + "  " + DescribeExpiry(c))
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
  if (detail->connections.empty()) {
    std::cout << "connections using it: none\n";
    return 0;
  }
  std::cout << "connections using it:\n";
  Table connections = {{"connection", "provider", "auth", "status", "health"}};
  for (const auto& u : detail->connections) {
    connections.push_back({u.id, u.provider, u.auth_mode, u.status, u.health});
  }
  PrintTable(connections, "  ");
  return 0;
}

int CmdCredentialList(const Args& args) {
  store::AdminStore admin(DatabaseUrl(args));
  const auto credentials = admin.ListCredentials(args.Get("tenant"));
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

// Why the connection of a new run keeps it from running, if it does (stderr; stdout holds the id).
void NoteRunConnection(const store::EnqueuedRun& run, const std::string& tenant_id, const std::string& connection_id) {
  const auto& c = run.connection;
  if (!c) {
    std::cerr << "note: there is no connection " << connection_id << "; the run becomes poison when claimed\n";
  } else if (c->tenant_id != tenant_id) {
    std::cerr << "note: connection " << c->id << " belongs to tenant " << c->tenant_id << "\n";
  } else if (c->status == "retired") {
    std::cerr << "note: connection " << c->id << " is retired; the run becomes poison when claimed\n";
  } else if (c->status != "active" || c->health == "unhealthy") {
    std::cerr << "note: connection " << c->id << " is " << c->status << "/" << c->health
              << "; the run waits until it can run\n";
  }
}

int CmdRunEnqueue(const Args& args) {
  if (int rc = Require(args, {"tenant", "connection", "operation"})) return rc;
  const store::NewRun run{.tenant_id = args.Get("tenant"),
                          .connection_id = args.Get("connection"),
                          .operation = args.Get("operation"),
                          .method = args.Get("method"),
                          .path = args.Get("path"),
                          .body = args.Get("body"),
                          .headers_json = args.Get("headers"),
                          .idempotency_key = args.Get("idempotency-key"),
                          .trace_id = args.Get("trace-id"),
                          .external_ref_pointer = args.Get("external-ref")};
  if (args.Has("method") && !HttpMethod(run.method)) return UsageError("--method takes an HTTP method such as POST");
  if (args.Has("path") && !IsPath(run.path)) return UsageError("--path takes a path that starts with /");
  const auto brace = run.headers_json.find_first_not_of(" \t\r\n");
  if (args.Has("headers") && (brace == std::string::npos || run.headers_json[brace] != '{')) {
    return UsageError(R"(--headers takes a JSON object, e.g. '{"X-Request-Source": "ops"}')");
  }
  if (args.Has("external-ref") && run.external_ref_pointer.rfind('/', 0) != 0) {
    return UsageError("--external-ref takes a JSON pointer into the response, e.g. /id");
  }
  store::AdminStore admin(DatabaseUrl(args));
  const auto enqueued = admin.EnqueueRun(run);
  std::cout << enqueued.id << "\n";
  if (enqueued.created) {
    NoteRunConnection(enqueued, run.tenant_id, run.connection_id);
  } else {
    std::cerr << "note: idempotency key " << run.idempotency_key << " names an earlier run; nothing new was queued\n";
  }
  return 0;
}

const std::vector<std::string_view> kRunStatuses = {"pending", "running", "completed", "failed", "dead_lettered"};

int CmdRunList(const Args& args) {
  store::RunFilter filter;
  filter.tenant_id = args.Get("tenant");
  filter.status = args.Get("status");
  if (args.Has("status") && std::find(kRunStatuses.begin(), kRunStatuses.end(), filter.status) == kRunStatuses.end()) {
    return UsageError("--status takes pending, running, completed, failed or dead_lettered");
  }
  std::optional<int> limit;
  if (auto problem = ReadInt(args, "limit", 1, 100'000, limit); !problem.empty()) return UsageError(problem);
  filter.limit = limit.value_or(filter.limit);
  store::AdminStore admin(DatabaseUrl(args));
  const auto runs = admin.ListRuns(filter);
  if (runs.empty()) {
    std::cout << "no runs\n";
    return 0;
  }
  Table table = {{"run", "tenant", "connection", "operation", "status", "attempts", "http", "created",
                  "waiting for / last error"}};
  for (const auto& r : runs) {
    table.push_back({r.id, r.tenant_id, r.connection_id, r.operation, r.status, std::to_string(r.attempts),
                     Dash(r.last_status_code), r.created_at, Dash(OrElse(r.waiting_for, r.last_error.c_str()))});
  }
  PrintTable(table);
  return 0;
}

std::string NextRunAttempt(const store::RunInfo& r) {
  if (!r.completed_at.empty()) return "none (finished " + r.completed_at + ")";
  if (r.status == "running") return "in flight now (lease " + r.lease_owner + " until " + r.lease_expires_at + ")";
  return r.next_attempt_at + (r.waiting_for.empty() ? "" : ", waiting for " + r.waiting_for);
}

void PrintRunFailures(const std::vector<store::FailureInfo>& failures) {
  if (failures.empty()) {
    std::cout << "no failures\n";
    return;
  }
  std::cout << "failures:\n";
  Table table = {
      {"failure", "created", "attempt", "category", "error code", "next action", "escalations", "state", "message"}};
  for (const auto& f : failures) {
    table.push_back(
        {f.id, f.created_at, Dash(f.attempt), f.category, f.error_code, f.next_action, std::to_string(f.escalations),
         f.resolved_at.empty() ? "open" : "resolved " + f.resolved_at + " (" + f.resolution + ")", Dash(f.message)});
  }
  PrintTable(table, "  ");
}

int CmdRunShow(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto detail = admin.ShowRun(id);
  if (!detail) return Fail("no run " + id);
  const auto& r = detail->run;
  std::cout << "run " << r.id << "  tenant=" << r.tenant_id << "\n"
            << "  connection:   " << r.connection_id << "  "
            << (r.provider.empty() ? "(no such connection: the run is poison)" : r.provider) << "\n"
            << "  operation:    " << r.operation << "  " << r.method << " " << retry::RedactPath(r.path) << "\n"
            << "  status:       " << r.status << " after " << Count(r.attempts, "attempt", "attempts") << "\n"
            << "  next attempt: " << NextRunAttempt(r) << "\n"
            << "  idempotency:  " << Dash(r.idempotency_key) << "\n"
            << "  external ref: " << Dash(r.external_ref) << "  (pointer " << Dash(r.external_ref_pointer) << ")\n"
            << "  last status:  " << Dash(r.last_status_code) << "\n"
            << "  last error:   " << (r.last_error_code.empty() ? "" : "[" + r.last_error_code + "] ")
            << Dash(r.last_error) << "\n"
            << "  trace id:     " << Dash(r.trace_id) << "\n"
            << "  created:      " << r.created_at << "  started " << Dash(r.started_at) << "  completed "
            << Dash(r.completed_at) << (r.latency_ms.empty() ? "" : "  latency " + r.latency_ms + " ms") << "\n";
  if (detail->timeline.empty()) {
    std::cout << "no attempts yet\n";
  } else {
    std::cout << "attempts:\n";
    PrintAttemptLine("#", "started", "duration ms", "http", "outcome", "error class", "retryable",
                     "[error code] summary (credential version)");
    char duration[32];
    for (const auto& a : detail->timeline) {
      std::snprintf(duration, sizeof duration, "%.1f", a.duration_ms);
      const std::string summary = (a.error_code.empty() ? "" : "[" + a.error_code + "] ") + Dash(a.error_summary) +
                                  (a.credential_version.empty() ? "" : " (v" + a.credential_version + ")");
      PrintAttemptLine(std::to_string(a.attempt), a.started_at, duration, Dash(a.status_code), a.outcome,
                       Dash(a.error_class), a.retryable ? "yes" : "no", summary);
    }
  }
  PrintRunFailures(detail->failures);
  return 0;
}

int CmdRunReplay(const Args& args) {
  const std::string& id = args.operands[0];
  store::AdminStore admin(DatabaseUrl(args));
  const auto replay = admin.ReplayRun(id);
  if (!replay.replayed) {
    std::cout << id << " is " << replay.previous_status << "; nothing to replay\n";
    return 0;
  }
  std::cout << "replayed " << id << " (was " << replay.previous_status
            << "); it runs again with a fresh attempt budget\n";
  return 0;
}

// The runs section of status: courier.run_queue_metrics and the connections
// that keep runs waiting.
void PrintRunsStatus(store::AdminStore& admin) {
  constexpr std::chrono::hours kExpiryWindow{7 * 24};
  const auto m = admin.RunMetrics(kExpiryWindow);
  std::cout << "\nruns:\n";
  const Table counts = {{"due now", std::to_string(m.due)},
                        {"scheduled later", std::to_string(m.scheduled)},
                        {"waiting for their connection", std::to_string(m.waiting)},
                        {"running", std::to_string(m.running)},
                        {"dead-lettered", std::to_string(m.dead_lettered)},
                        {"connections unhealthy", std::to_string(m.unhealthy_connections)},
                        {"connections degraded", std::to_string(m.degraded_connections)},
                        {"credentials expiring within 7 days", std::to_string(m.credentials_expiring)},
                        {"open escalations", std::to_string(m.open_escalations)}};
  PrintTable(counts, "  ");
  const auto attention = admin.ConnectionsNeedingAttention();
  if (attention.empty()) return;
  std::cout << "\nconnections pending, degraded or unhealthy:\n";
  Table table = {{"connection", "tenant", "provider", "status", "health", "runs waiting", "reason"}};
  for (const auto& c : attention) {
    table.push_back({c.id, c.tenant_id, c.provider, c.status, c.health, std::to_string(c.runs_waiting),
                     Dash(OrElse(c.status_reason, c.last_health_error.c_str()))});
  }
  PrintTable(table, "  ");
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
  PrintRunsStatus(admin);
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
    {"replay",
     "",
     {"tenant", "subscription", "event-type", "since", "until", "status", "include-delivered", "dry-run"},
     CmdReplay},
    {"redeliver", "", {"subscription", "from-event", "since", "limit"}, CmdRedeliver},
    {"inspect", "DLV_ID", {}, CmdInspect},
    {"status", "", {"recent"}, CmdStatus},
    {"connection create",
     "",
     {"tenant", "provider", "base-url", "auth", "credential", "api-key-header", "token-url", "client-id", "scopes",
      "health-check", "expect-status", "policy", "status", "rate-limit", "burst", "max-in-flight", "id"},
     CmdConnectionCreate},
    {"connection list", "", {"tenant"}, CmdConnectionList},
    {"connection show", "ID", {}, CmdConnectionShow},
    {"connection retire", "ID", {}, CmdConnectionRetire},
    {"connection activate", "ID", {}, CmdConnectionActivate},
    {"credential create", "", {"tenant", "from-file", "name", "expires-at", "id"}, CmdCredentialCreate},
    {"credential rotate", "CRED", {"from-file", "expires-at"}, CmdCredentialRotate},
    {"credential show", "CRED", {}, CmdCredentialShow},
    {"credential list", "", {"tenant"}, CmdCredentialList},
    {"run enqueue",
     "",
     {"tenant", "connection", "operation", "method", "path", "body", "headers", "idempotency-key", "trace-id",
      "external-ref"},
     CmdRunEnqueue},
    {"run list", "", {"tenant", "status", "limit"}, CmdRunList},
    {"run show", "ID", {}, CmdRunShow},
    {"run replay", "ID", {}, CmdRunReplay},
    {"version", "", {}, CmdVersion},
};

// The commands of a group ("subscription") as "create, list, ... or revoke-secret";
// empty when `group` names no group.
std::string SubCommands(std::string_view group) {
  std::vector<std::string_view> names;
  for (const auto& c : kCommands) {
    if (c.name.size() > group.size() && c.name.substr(0, group.size()) == group && c.name[group.size()] == ' ') {
      names.push_back(c.name.substr(group.size() + 1));
    }
  }
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    out.append(i == 0 ? "" : i + 1 == names.size() ? " or " : ", ").append(names[i]);
  }
  return out;
}

// Finds the command named by the first positional arguments, and checks its
// operands and options. Prints what is wrong and returns nullptr if anything is.
const Command* Resolve(Args& args) {
  std::string name = args.positional[0];
  std::size_t words = 1;
  if (const std::string subcommands = SubCommands(name); !subcommands.empty()) {
    if (args.positional.size() < 2) {
      std::cerr << "pgcourierctl: " << name << " needs " << subcommands << "\n";
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

#include "dispatch/dispatcher.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <system_error>
#include <unordered_map>

#include "dispatch/outcome_writer.hpp"
#include "dispatch/request_builder.hpp"
#include "dispatch/run_lane.hpp"
#include "http/executor.hpp"
#include "limits/limits.hpp"
#include "metrics/metrics.hpp"
#include "retry/classify.hpp"
#include "retry/retry_after.hpp"
#include "retry/text.hpp"
#include "signing/secret_box.hpp"
#include "signing/webhook_signature.hpp"
#include "store/statements.hpp"
#include "store/store.hpp"

namespace pgcourier::dispatch {
namespace {

using Clock = std::chrono::steady_clock;
using model::Millis;

// How long a delivery that cannot be attempted (unknown policy, no usable
// signing secret) waits before it is looked at again.
constexpr Millis kHoldDelay{30000};
constexpr Millis kReconnectMin{100};
constexpr Millis kReconnectMax{5000};
constexpr int kRescueBatch = 500;
// The coalesced NOTIFY courier_outbox after outcome statements (sql/008).
constexpr Millis kOutboxNotifyInterval{100};
// Release delay meaning "until the subscription is resumed" (next_attempt_at = infinity).
constexpr std::int64_t kUntilResumed = -1;

store::StatementObserver StatementObserver(metrics::Metrics* metrics) {
  return [metrics](const char* name, double seconds) {
    if (metrics) metrics->StatementDuration(name, seconds);
  };
}

std::int64_t UnixMicrosNow() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct InFlight {
  model::ClaimedDelivery delivery;
  std::shared_ptr<const config::PolicySet> policies;  // keeps `policy` alive
  const model::Policy* policy = nullptr;
};

}  // namespace

struct Dispatcher::Impl {
  DispatcherOptions options;
  const config::Settings& settings;
  http::Executor executor;
  std::unique_ptr<store::Store> store;
  int control_fd = -1;
  std::atomic<bool> drain_requested{false};
  std::atomic<bool> stop_requested{false};
  std::mutex policies_mu;
  std::shared_ptr<const config::PolicySet> replacement_policies;  // guarded by policies_mu

  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> unit{0.0, 1.0};

  std::uint64_t next_token = 1;
  std::unordered_map<std::uint64_t, InFlight> in_flight;
  std::vector<model::DeliveryOutcome> pending_outcomes;  // not yet handed to the writer
  std::vector<std::pair<std::int64_t, std::string>> pending_finish;  // (event created us, status) for metrics
  // The batch the writer has (its own connection and thread): how many, and
  // their pending_finish entries (writing_fifo_finished below: whether a FIFO
  // delivery finished among them).
  OutcomeWriter writer;
  std::size_t writing_count = 0;
  std::vector<std::pair<std::int64_t, std::string>> writing_finish;
  std::vector<store::Release> pending_releases;
  std::unordered_map<std::string, std::string> opened_secrets;  // sealed text -> key bytes
  std::unordered_map<std::string, std::optional<std::string>> url_checks;  // URL -> why it is not valid

  // Limits and health, per subscription and per endpoint (this daemon's view).
  std::unordered_map<std::string, int> in_flight_by_subscription;
  limits::KeyedRateLimiter rate_limits;                                // by subscription
  std::unordered_map<std::string, limits::CircuitBreaker> breakers;    // by endpoint (scheme://host:port)
  std::unordered_map<std::string, std::string> policy_of_subscription; // for auto-pause after a write
  std::vector<std::pair<std::string, std::string>> pending_disables;   // (subscription, reason)
  bool fifo_finished = false;  // a FIFO delivery finished: the next one of its key may be due
  bool writing_fifo_finished = false;
  // Compiled endpoint rules per policy name; rebuilt when policies change.
  std::unordered_map<std::string, std::shared_ptr<const netguard::EndpointRules>> endpoint_rules;

  Millis lease{0};
  bool notified = true;   // claim at start-up without waiting for a NOTIFY
  bool runs_notified = true;
  bool backlog = false;   // the last claim was full: more is probably due
  bool ready_sent = false;
  bool wake_held = true;  // at start-up too: a restart may have fixed what held them
  bool outbox_notify_owed = false;  // outcome statements wrote outbox rows since the last NOTIFY
  Clock::time_point next_poll = Clock::now();
  // When retries this daemon scheduled (shorter than the poll interval) fall
  // due: it claims then, instead of at the next poll. Retries of other daemons
  // and longer ones are found by the poll.
  std::priority_queue<Clock::time_point, std::vector<Clock::time_point>, std::greater<>> own_retries_due;
  Clock::time_point claim_started;
  // NOTIFY courier_outbox for the outcome statements' rows: at most every
  // kOutboxNotifyInterval (see outbox_notify_owed).
  Clock::time_point next_outbox_notify = Clock::now();
  Clock::time_point next_rescue = Clock::now();
  Clock::time_point next_maintenance = Clock::now();
  bool leader = false;
  Clock::time_point next_connect = Clock::now();
  Millis reconnect_delay = kReconnectMin;
  std::optional<Clock::time_point> drain_deadline;
  bool aborted = false;

  RunLane run_lane;

  explicit Impl(DispatcherOptions opts)
      : options(std::move(opts)),
        settings(options.settings),
        executor(http::ExecutorOptions{options.settings.concurrency, options.settings.user_agent, 1 << 20,
                                       options.settings.concurrency, options.settings.lease_margin / 2}),
        writer(OutcomeWriterOptions{options.settings.database_url, options.settings.worker_id,
                                    options.settings.delivery_events, StatementObserver(options.metrics),
                                    kReconnectMin, kReconnectMax}),
        run_lane(RunLaneContext{&settings, &executor, options.secret_box, options.metrics,
                                [this] { return next_token++; }, [this] { return Random(); },
                                [this](const model::Policy& policy) { return RulesFor(policy); }}) {
    control_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (control_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::generic_category().message(errno));
    lease = options.policies->LongestRequestTimeout() + settings.lease_margin;
  }
  ~Impl() {
    if (control_fd >= 0) close(control_fd);
  }

  void Wake() {
    const std::uint64_t one = 1;
    (void)!write(control_fd, &one, sizeof one);
  }

  double Random() { return unit(rng); }

  Millis JitteredPoll() {
    const double factor = 0.8 + 0.4 * Random();
    return Millis(static_cast<std::int64_t>(static_cast<double>(settings.poll_interval.count()) * factor));
  }

  // Connection management ---------------------------------------------------

  // Returns false when the daemon must not run (schema too old).
  bool EnsureConnected() {
    if (store) return true;
    if (Clock::now() < next_connect) return true;
    try {
      auto fresh = std::make_unique<store::Store>(settings.database_url, StatementObserver(options.metrics));
      const auto schema = fresh->CheckSchema();
      if (!schema.missing.empty()) {
        std::string missing;
        for (const auto& m : schema.missing) missing += (missing.empty() ? "" : ", ") + m;
        spdlog::critical(
            "database schema is at version {} but pgcourierd needs version {}: missing migration(s) {}; "
            "run 'pgcourierctl migrate' against this database",
            schema.current_version, schema.required_version, missing);
        return false;
      }
      fresh->SetDeliveryEvents(settings.delivery_events);
      fresh->Listen();
      store = std::move(fresh);
      if (reconnect_delay != kReconnectMin || ready_sent) {
        spdlog::info("database connection established");
        if (options.metrics && ready_sent) options.metrics->DatabaseReconnect();
      }
      reconnect_delay = kReconnectMin;
      notified = true;
    } catch (const store::StoreError& e) {
      spdlog::warn("cannot reach the database ({}); retrying in {} ms", e.what(), reconnect_delay.count());
      next_connect = Clock::now() + reconnect_delay;
      reconnect_delay = std::min(kReconnectMax, reconnect_delay * 2);
    }
    return true;
  }

  void LoseConnection(const store::StoreError& e) {
    if (leader) {
      leader = false;  // the advisory lock went with the connection
      if (options.metrics) options.metrics->Leader(false);
    }
    spdlog::error("database connection lost: {}; {} result(s) kept in memory until it is back", e.what(),
                  pending_outcomes.size() + pending_releases.size());
    store.reset();
    next_connect = Clock::now() + reconnect_delay;
    reconnect_delay = std::min(kReconnectMax, reconnect_delay * 2);
  }

  // Runs fn against the store, turning a lost connection into a reconnect and
  // a failed statement into a log line. Returns false if fn did not complete.
  template <typename Fn>
  bool WithStore(const char* what, Fn&& fn) {
    if (!store) return false;
    try {
      fn(*store);
      return true;
    } catch (const store::StoreError& e) {
      if (e.kind() == store::StoreError::Kind::kConnectionLost) {
        LoseConnection(e);
      } else {
        spdlog::error("{} failed: {}", what, e.what());
      }
      return false;
    }
  }

  // Outcomes ------------------------------------------------------------------

  model::DeliveryOutcome OutcomeWithoutRequest(const model::ClaimedDelivery& d, model::DeliveryStatus status,
                                               std::string outcome, model::FailureClass failure_class,
                                               const std::string& summary) {
    model::DeliveryOutcome o;
    o.delivery_id = d.id;
    o.attempt = d.Attempt();
    o.next_status = status;
    o.outcome = std::move(outcome);
    o.failure_class = failure_class;
    o.retryable = false;
    o.error_summary = retry::SafeSummary(summary);
    o.started_us = UnixMicrosNow();
    return o;
  }

  void Hold(const model::ClaimedDelivery& d, const std::string& reason) {
    spdlog::warn("delivery {} (tenant {}, subscription {}) held for {} s: {}", d.id, d.tenant_id, d.subscription_id,
                 kHoldDelay.count() / 1000, reason);
    pending_releases.push_back({d.id, kHoldDelay.count(), retry::SafeSummary(store::kHeldPrefix + reason)});
    if (options.metrics) options.metrics->HeldDeliveries(1);
  }

  void Finish(const model::ClaimedDelivery& d, model::DeliveryOutcome outcome) {
    pending_finish.emplace_back(d.event_created_us, std::string(model::ToString(outcome.next_status)));
    pending_outcomes.push_back(std::move(outcome));
  }

  // Opens the subscription's sealed secrets (cached). nullopt + reason when
  // the delivery cannot be signed.
  std::optional<std::vector<std::string>> SigningKeys(const model::ClaimedDelivery& d, std::string& reason) {
    if (d.sealed_secrets.empty()) {
      reason = "subscription " + d.subscription_id + " has no active signing secret";
      return std::nullopt;
    }
    if (!options.secret_box) {
      reason = "no master key is configured (master_key_file), so signing secrets cannot be opened";
      return std::nullopt;
    }
    std::vector<std::string> keys;
    for (const auto& sealed : d.sealed_secrets) {
      auto it = opened_secrets.find(sealed);
      if (it == opened_secrets.end()) {
        auto opened = options.secret_box->Open(sealed, d.subscription_id);
        if (!opened) {
          reason = "a signing secret of subscription " + d.subscription_id +
                   " does not open with the configured master key";
          return std::nullopt;
        }
        // The sealed text is the whsec_ form the receiver was given; sign with its key bytes.
        auto key = signing::DecodeWebhookSecret(*opened);
        if (!key) {
          reason = "a signing secret of subscription " + d.subscription_id + " is not a valid whsec_ secret";
          return std::nullopt;
        }
        if (opened_secrets.size() > 100000) opened_secrets.clear();
        it = opened_secrets.emplace(sealed, std::move(*key)).first;
      }
      keys.push_back(it->second);
    }
    return keys;
  }

  static std::string EndpointOf(const std::string& url) {
    // scheme://host:port: requests to one endpoint share its circuit. Any
    // user:password@ is left out (it must not reach logs or last_error).
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) return url;
    const auto authority_start = scheme_end + 3;
    const auto path_start = std::min(url.find_first_of("/?#", authority_start), url.size());
    auto host_start = url.rfind('@', path_start);
    host_start = (host_start == std::string::npos || host_start < authority_start) ? authority_start : host_start + 1;
    return url.substr(0, authority_start) + url.substr(host_start, path_start - host_start);
  }

  static std::int64_t SteadyMs() {
    return std::chrono::duration_cast<Millis>(Clock::now().time_since_epoch()).count();
  }

  // The subscription's in-flight and rate limits, and its endpoint's circuit.
  // Over a limit, the delivery goes back to the database to wait: not failed,
  // no attempt spent, its lease released at once.
  bool WithinLimits(const model::ClaimedDelivery& d, const model::Policy& policy) {
    const std::int64_t now = SteadyMs();
    std::int64_t wait = 0;
    const int max_in_flight = d.max_in_flight > 0 ? d.max_in_flight : policy.limits.max_in_flight;
    if (max_in_flight > 0 && in_flight_by_subscription[d.subscription_id] >= max_in_flight) {
      pending_releases.push_back({d.id, 50, "waiting: subscription at its limit of " +
                                                std::to_string(max_in_flight) + " request(s) in flight"});
      return false;
    }
    if (!rate_limits.TryTake(d.subscription_id, d.rate_per_second, d.rate_burst, policy.limits, now, wait)) {
      pending_releases.push_back({d.id, wait, "waiting: subscription rate limit"});
      return false;
    }
    // Last: a half-open circuit lets its one probe through here, and the probe
    // must then really be sent (no later gate may hold it back).
    if (policy.circuit_breaker.failures > 0) {
      const std::string endpoint = EndpointOf(d.url);
      auto& breaker = breakers[endpoint];
      if (!breaker.Allow(now, wait)) {
        pending_releases.push_back({d.id, wait, "waiting: circuit open for " + endpoint});
        return false;
      }
    }
    return true;
  }

  // http::CheckDeliveryUrl, remembered per URL (it parses the URL with curl;
  // a subscription's URL is checked once, not once per delivery).
  const std::optional<std::string>& CheckedUrl(const std::string& url) {
    auto it = url_checks.find(url);
    if (it == url_checks.end()) {
      if (url_checks.size() >= 10000) url_checks.clear();
      it = url_checks.emplace(url, http::CheckDeliveryUrl(url)).first;
    }
    return it->second;
  }

  std::shared_ptr<const netguard::EndpointRules> RulesFor(const model::Policy& policy) {
    // Only the current policies are cached: a request started under policies
    // replaced since (a run that waited for its token) gets its own rules.
    const bool current = options.policies->Find(policy.name) == &policy;
    std::shared_ptr<const netguard::EndpointRules> uncached;
    auto& rules = current ? endpoint_rules[policy.name] : uncached;
    if (!rules) {
      auto compiled = std::make_shared<netguard::EndpointRules>();
      compiled->require_https = policy.endpoint.require_https;
      for (const auto& text : policy.endpoint.allow_cidrs) {
        if (auto cidr = netguard::ParseCidr(text)) compiled->allow_cidrs.push_back(*cidr);  // validated at load
      }
      compiled->allow_hosts = policy.endpoint.allow_hosts;
      rules = std::move(compiled);
    }
    return rules;
  }

  void Dispatch(std::vector<model::ClaimedDelivery> claimed) {
    std::vector<http::Request> requests;
    requests.reserve(claimed.size());
    const auto policies = options.policies;
    const std::int64_t now_s = UnixMicrosNow() / 1000000;
    for (auto& d : claimed) {
      const model::Policy* policy = policies->Find(d.policy_name);
      if (!policy) {
        Hold(d, "policy '" + d.policy_name + "' of subscription " + d.subscription_id + " is not defined in " +
                    settings.policies_file);
        continue;
      }
      if (!d.subscription_active) {
        Finish(d, OutcomeWithoutRequest(d, model::DeliveryStatus::kFailed, "subscription_inactive",
                                        model::FailureClass::kValidation,
                                        "subscription " + d.subscription_id + " is not active"));
        continue;
      }
      if (!d.tenant_consistent) {
        Finish(d, OutcomeWithoutRequest(d, model::DeliveryStatus::kFailed, "tenant_mismatch",
                                        model::FailureClass::kPoison,
                                        "delivery " + d.id + " of tenant " + d.tenant_id +
                                            " does not match the tenant of its event or subscription " +
                                            d.subscription_id + "; not sent"));
        continue;
      }
      if (const auto& bad_url = CheckedUrl(d.url)) {
        Finish(d, OutcomeWithoutRequest(d, model::DeliveryStatus::kFailed, "invalid_url",
                                        model::FailureClass::kValidation, *bad_url));
        continue;
      }
      if (d.subscription_paused) {
        pending_releases.push_back({d.id, kUntilResumed, "held: subscription " + d.subscription_id + " is paused"});
        continue;
      }
      std::string reason;
      auto keys = SigningKeys(d, reason);
      if (!keys) {
        Hold(d, reason);
        continue;
      }
      if (!WithinLimits(d, *policy)) continue;
      http::Request r;
      r.body = BuildEnvelope(d);
      if (r.body.size() > policy->max_body_bytes) {
        Finish(d, OutcomeWithoutRequest(d, model::DeliveryStatus::kFailed, "payload_too_large",
                                        model::FailureClass::kPoison,
                                        "the webhook body would be " + std::to_string(r.body.size()) +
                                            " bytes, over the policy's max_body_bytes (" +
                                            std::to_string(policy->max_body_bytes) + "); not sent"));
        continue;
      }
      r.token = next_token++;
      r.url = d.url;
      r.headers = BuildHeaders(d, r.body, *keys, now_s, rng());
      r.connect_timeout = policy->connect_timeout;
      r.request_timeout = policy->request_timeout;
      r.excerpt_bytes = policy->response_excerpt_bytes;
      r.rules = RulesFor(*policy);
      spdlog::debug("delivery {} attempt {} (tenant {}, event {}, trace {}) -> sending", d.id, d.Attempt(),
                    d.tenant_id, d.event_id, d.trace_id);
      ++in_flight_by_subscription[d.subscription_id];
      in_flight.emplace(r.token, InFlight{std::move(d), policies, policy});
      requests.push_back(std::move(r));
    }
    executor.Submit(std::move(requests));
  }

  void CollectCompletions() {
    for (auto& c : executor.TakeCompletions()) {
      auto it = in_flight.find(c.token);
      if (it == in_flight.end()) {
        run_lane.Complete(c);
        continue;
      }
      InFlight f = std::move(it->second);
      in_flight.erase(it);
      const auto& d = f.delivery;
      const auto& r = c.result;
      if (--in_flight_by_subscription[d.subscription_id] <= 0) in_flight_by_subscription.erase(d.subscription_id);
      if (r.transport_error == model::TransportError::kAborted) {  // shutdown, or never got a slot
        pending_releases.push_back({d.id, 0, "released by " + settings.worker_id + ": " + r.error_message});
        continue;
      }
      const retry::Verdict verdict = retry::Classify(r, *f.policy);
      retry::NextStep step = retry::Decide(verdict, d.BudgetAttempt(), *f.policy, Random());
      if (step.status == model::DeliveryStatus::kRetryScheduled &&
          verdict.failure_class == model::FailureClass::kRateLimited && !r.retry_after.empty()) {
        // The receiver said when to come back: not earlier, but never later than the policy's cap.
        if (auto asked = retry::ParseRetryAfter(r.retry_after, UnixMicrosNow() / 1000)) {
          step.delay = std::min(std::max(step.delay, *asked), f.policy->backoff.cap);
        }
      }
      UpdateEndpointHealth(d, *f.policy, verdict);
      policy_of_subscription[d.subscription_id] = d.policy_name;
      if (!d.ordering_key.empty() && model::IsTerminal(step.status)) fifo_finished = true;
      if (r.status_code == 410) {
        pending_disables.emplace_back(d.subscription_id, "the endpoint answered 410 Gone (delivery " + d.id + ")");
      }
      model::DeliveryOutcome o;
      o.delivery_id = d.id;
      o.subscription_id = d.subscription_id;
      o.attempt = d.Attempt();
      o.next_status = step.status;
      if (step.status == model::DeliveryStatus::kRetryScheduled) o.retry_delay_ms = step.delay.count();
      if (r.status_code > 0) o.status_code = r.status_code;
      o.outcome = verdict.outcome;
      o.failure_class = verdict.failure_class;
      o.retryable = verdict.retryable;
      if (!verdict.success) o.error_summary = retry::SafeSummary(verdict.summary);
      o.response_excerpt = retry::SanitizeUtf8(r.body_excerpt, f.policy->response_excerpt_bytes);
      o.started_us = r.started_us;
      o.duration_ms = r.duration_ms;
      if (options.metrics) {
        options.metrics->AttemptRecorded(verdict.outcome, model::ToString(verdict.failure_class),
                                         r.duration_ms / 1000.0);
      }
      if (!verdict.success) {
        spdlog::info("delivery {} attempt {} (tenant {}, trace {}): {} -> {}{}", d.id, d.Attempt(), d.tenant_id,
                     d.trace_id, o.error_summary, model::ToString(step.status),
                     step.status == model::DeliveryStatus::kRetryScheduled
                         ? " in " + std::to_string(step.delay.count()) + " ms"
                         : "");
      }
      Finish(d, std::move(o));
    }
  }

  void UpdateEndpointHealth(const model::ClaimedDelivery& d, const model::Policy& policy,
                            const retry::Verdict& verdict) {
    if (policy.circuit_breaker.failures <= 0) return;
    auto& breaker = breakers[EndpointOf(d.url)];
    // Only failures that say the endpoint is unwell open the circuit, not a rejected request.
    const bool unwell = verdict.failure_class == model::FailureClass::kTransient ||
                        verdict.failure_class == model::FailureClass::kRateLimited;
    if (verdict.success || !unwell) {
      breaker.OnSuccess();
    } else if (breaker.OnFailure(SteadyMs(), policy.circuit_breaker.failures, policy.circuit_breaker.cooldown.count())) {
      spdlog::warn("circuit opened for {} after {} consecutive failure(s): deliveries to it wait {} ms, then one "
                   "probe goes through",
                   EndpointOf(d.url), policy.circuit_breaker.failures, policy.circuit_breaker.cooldown.count());
    }
  }

  // Pauses subscriptions whose counters crossed their policy's auto_pause limits.
  void CheckAutoPause(const std::vector<store::SubscriptionHealth>& health) {
    for (const auto& h : health) {
      const auto name = policy_of_subscription.find(h.subscription_id);
      if (name == policy_of_subscription.end()) continue;
      const model::Policy* policy = options.policies->Find(name->second);
      if (!policy) continue;
      const auto& rule = policy->auto_pause;
      std::string reason;
      if (rule.consecutive_failures > 0 && h.consecutive_failures >= rule.consecutive_failures) {
        reason = std::to_string(h.consecutive_failures) + " consecutive failed attempts (policy '" + policy->name +
                 "' pauses at " + std::to_string(rule.consecutive_failures) + ")";
      } else if (rule.failing_for.count() > 0 && h.failing_for_ms >= rule.failing_for.count()) {
        reason = "no successful attempt for " + std::to_string(h.failing_for_ms / 1000) + " s (policy '" +
                 policy->name + "' pauses after " + std::to_string(rule.failing_for.count() / 1000) + " s)";
      }
      if (reason.empty()) continue;
      if (WithStore("pausing a subscription", [&](store::Store& s) { s.PauseSubscription(h.subscription_id, reason); })) {
        spdlog::warn("subscription {} paused automatically: {}; its deliveries are held until "
                     "'pgcourierctl subscription resume {}'",
                     h.subscription_id, reason, h.subscription_id);
      }
    }
  }

  // The writer's batch is committed, or it failed and goes back to the front
  // of the queue (written again on the next turn; the writer waits out its
  // reconnect delay first).
  void AfterWrite(WriteResult r) {
    writing_count = 0;
    if (!r.written) {
      if (r.connection_lost) {
        spdlog::error("database connection lost while recording outcomes: {}; {} result(s) kept in memory until it "
                      "is back", r.error, r.outcomes.size() + pending_outcomes.size());
      } else {
        spdlog::error("recording outcomes failed: {}", r.error);
      }
      r.outcomes.insert(r.outcomes.end(), std::make_move_iterator(pending_outcomes.begin()),
                        std::make_move_iterator(pending_outcomes.end()));
      pending_outcomes = std::move(r.outcomes);
      writing_finish.insert(writing_finish.end(), pending_finish.begin(), pending_finish.end());
      pending_finish = std::move(writing_finish);
      writing_finish.clear();
      fifo_finished |= writing_fifo_finished;
      return;
    }
    // The retries were written with next_attempt_at = the transaction's
    // now() + delay, which is no later than this moment + delay.
    const auto written = Clock::now();
    if (settings.delivery_events != "none") {
      for (const auto& o : r.outcomes) outbox_notify_owed |= model::IsTerminal(o.next_status);
    }
    for (const auto& o : r.outcomes) {
      if (o.next_status == model::DeliveryStatus::kRetryScheduled && o.retry_delay_ms && *o.retry_delay_ms > 0 &&
          *o.retry_delay_ms < settings.poll_interval.count()) {
        own_retries_due.push(written + Millis(*o.retry_delay_ms));
      }
    }
    CheckAutoPause(r.health);
    if (writing_fifo_finished) notified = true;  // the next delivery of a FIFO key may be claimable now
    if (r.applied.size() != r.outcomes.size()) {
      const auto stale = r.outcomes.size() - r.applied.size();
      spdlog::warn("{} result(s) were not recorded because their lease had expired and was taken over; "
                   "those deliveries will be attempted again",
                   stale);
      if (options.metrics) options.metrics->StaleOutcomes(static_cast<int>(stale));
    }
    if (options.metrics) {
      const auto now_us = UnixMicrosNow();
      for (const auto& [created_us, status] : writing_finish) {
        if (status == "delivered" || status == "failed" || status == "dead_lettered") {
          options.metrics->DeliveryFinished(status, static_cast<double>(now_us - created_us) / 1e6);
        }
      }
    }
    writing_finish.clear();
  }

  // Outcomes go to the writer one batch at a time: what completed while it
  // wrote the previous batch is the next one.
  void FlushWrites() {
    if (auto result = writer.TakeResult()) AfterWrite(std::move(*result));
    if (!writer.busy() && !pending_outcomes.empty()) {
      writing_count = pending_outcomes.size();
      writing_finish = std::move(pending_finish);
      pending_finish.clear();
      writing_fifo_finished = fifo_finished;
      fifo_finished = false;
      writer.Write(std::move(pending_outcomes));
      pending_outcomes.clear();
    }
    while (!pending_disables.empty()) {
      // Plain references, not a structured binding: clang before 16 cannot capture bindings in the lambda below.
      const std::string& subscription = pending_disables.back().first;
      const std::string& reason = pending_disables.back().second;
      if (!WithStore("disabling a subscription", [&](store::Store& s) { s.DisableSubscription(subscription, reason); })) {
        break;
      }
      spdlog::warn("subscription {} disabled: {}", subscription, reason);
      pending_disables.pop_back();
    }
    if (!pending_releases.empty()) {
      if (WithStore("releasing leases", [&](store::Store& s) { s.ReleaseLeases(settings.worker_id, pending_releases); })) {
        pending_releases.clear();
      }
    }
    if (run_lane.has_unwritten()) WithStore("recording run results", [&](store::Store& s) { run_lane.Flush(s); });
  }

  void MaybeNotifyOutbox() {
    if (!outbox_notify_owed || !store || Clock::now() < next_outbox_notify) return;
    if (WithStore("notifying outbox consumers", [&](store::Store& s) { s.NotifyOutbox(); })) {
      outbox_notify_owed = false;
      next_outbox_notify = Clock::now() + kOutboxNotifyInterval;
    }
  }

  // Requests may be submitted beyond the concurrency: the executor runs at most
  // `concurrency` at once and starts the others, in order, the moment a
  // transfer finishes (no round trip through this loop, which may be waiting
  // for the database). A quarter of the concurrency, at most one claim batch,
  // may wait that way.
  int Standby() const { return std::min(settings.max_claim_batch, std::max(1, settings.concurrency / 4)); }
  int FreeSlots() const {
    return settings.concurrency + Standby() - static_cast<int>(in_flight.size()) - run_lane.busy();
  }

  bool HasUnwritten() const {
    return !pending_outcomes.empty() || writer.busy() || !pending_releases.empty() || run_lane.has_unwritten();
  }

  void MaybeClaimRuns(bool timer) {
    if (!(runs_notified || timer || run_lane.backlog())) return;
    const int free = FreeSlots();
    // Like deliveries: with a backlog, claim in batches, not one run per freed slot.
    const int min_batch = run_lane.backlog() ? std::max(1, std::min(settings.concurrency / 8, settings.max_claim_batch)) : 1;
    if (free < min_batch) return;
    const auto policies = options.policies;
    // An OAuth2 run may wait one request timeout for its token before its own request.
    const Millis run_lease = lease + policies->LongestRequestTimeout();
    if (WithStore("claiming runs", [&](store::Store& s) { run_lane.Claim(s, free, run_lease, policies); })) {
      runs_notified = false;
    }
  }

  // Reads notifications; returns how many deliveries to claim now (0: none)
  // and whether the poll timer fired.
  int DeliveryClaimLimit(bool& timer) {
    timer = false;
    if (!store || drain_deadline) return 0;
    WithStore("reading notifications", [&](store::Store& s) {
      if (s.TakeNotifications() > 0) notified = true;
      if (s.TakeRunNotifications() > 0) runs_notified = true;
    });
    claim_started = Clock::now();
    timer = claim_started >= next_poll;
    const bool retry_due = !own_retries_due.empty() && own_retries_due.top() <= claim_started;
    if (!(notified || timer || backlog || retry_due)) return 0;
    // The writer is a whole concurrency's worth of results behind (a slow or
    // unreachable database): no new leases until it catches up.
    if (pending_outcomes.size() >= static_cast<std::size_t>(settings.concurrency)) return 0;
    int free = FreeSlots();
    // While runs are backlogged too, deliveries take at most half of the free
    // slots, so a delivery backlog cannot keep every slot away from the runs.
    if (run_lane.backlog()) free /= 2;
    // With a backlog, wait for a useful batch of free slots instead of
    // claiming one row per completion: fewer, larger transactions.
    const int min_batch = backlog ? std::max(1, std::min(settings.concurrency / 8, settings.max_claim_batch)) : 1;
    if (free < min_batch) return 0;
    return std::min(free, settings.max_claim_batch);
  }

  void AfterClaim(std::vector<model::ClaimedDelivery> claimed, int limit, bool timer) {
    notified = false;
    if (timer) next_poll = Clock::now() + JitteredPoll();
    while (!own_retries_due.empty() && own_retries_due.top() <= claim_started) own_retries_due.pop();
    backlog = static_cast<int>(claimed.size()) == limit;
    if (options.metrics && !claimed.empty()) options.metrics->ClaimBatch(static_cast<int>(claimed.size()));
    if (!claimed.empty()) Dispatch(std::move(claimed));
    if (!ready_sent) {
      ready_sent = true;
      spdlog::info("pgcourierd {} ready: concurrency {}, lease {} ms", settings.worker_id, settings.concurrency,
                   lease.count());
      if (options.on_ready) options.on_ready();
    }
  }

  void MaybeClaim() {
    bool timer = false;
    const int limit = DeliveryClaimLimit(timer);
    if (store && !drain_deadline) MaybeClaimRuns(timer);
    if (limit <= 0) return;
    std::vector<model::ClaimedDelivery> claimed;
    if (!WithStore("claiming", [&](store::Store& s) { claimed = s.ClaimDue(settings.worker_id, limit, lease, settings.tenants); })) {
      return;
    }
    AfterClaim(std::move(claimed), limit, timer);
  }


  // Maintenance runs in one daemon at a time (the holder of an advisory lock on
  // its connection; it moves to another daemon when the holder's connection
  // closes): lease rescue, queue-depth metrics, retention.
  void MaybeMaintain() {
    if (!store || drain_deadline) return;
    const auto now = Clock::now();
    if (now >= next_rescue) {
      next_rescue = now + settings.rescue_interval;
      if (options.metrics) options.metrics->OpenCircuits(CountOpenCircuits());
      if (!leader) {
        WithStore("taking maintenance leadership", [&](store::Store& s) { leader = s.TryBecomeLeader(); });
        if (leader) {
          spdlog::info("this daemon ({}) now runs maintenance: lease rescue, queue metrics, retention",
                       settings.worker_id);
          if (options.metrics) options.metrics->Leader(true);
          next_maintenance = now;
        }
      }
      if (leader) Rescue();
    }
    if (leader && now >= next_maintenance) {
      next_maintenance = now + settings.maintenance_interval;
      RefreshQueueMetrics();
      PruneFinished();
      const auto policies = options.policies;
      WithStore("run maintenance", [&](store::Store& s) { run_lane.Maintain(s, policies, options.metrics != nullptr); });
    }
  }

  int CountOpenCircuits() const {
    const std::int64_t now = SteadyMs();
    int open = 0;
    for (const auto& [endpoint, breaker] : breakers) {
      if (breaker.state(now) != limits::CircuitBreaker::State::kClosed) ++open;
    }
    return open;
  }

  void RefreshQueueMetrics() {
    if (!options.metrics) return;
    WithStore("reading queue metrics", [&](store::Store& s) {
      const auto q = s.ReadQueueMetrics();
      auto* m = options.metrics;
      m->QueueDepth("due", static_cast<double>(q.due));
      m->QueueDepth("scheduled", static_cast<double>(q.scheduled));
      m->QueueDepth("held", static_cast<double>(q.held));
      m->QueueDepth("delivering", static_cast<double>(q.delivering));
      m->QueueDepth("dead_lettered", static_cast<double>(q.dead_lettered));
      m->PausedSubscriptions(static_cast<double>(q.paused_subscriptions));
      m->OldestDueSeconds(q.oldest_due_seconds);
    });
  }

  void PruneFinished() {
    constexpr int kBatch = 5000;
    constexpr int kBatchesPerTick = 10;  // bounded work per tick; the rest waits for the next one
    int total = 0;
    for (int i = 0; i < kBatchesPerTick; ++i) {
      int removed = 0;
      if (!WithStore("pruning", [&](store::Store& s) {
            removed = s.Prune(settings.retention_completed, settings.retention_dead_lettered, kBatch);
          })) {
        break;
      }
      total += removed;
      if (removed < kBatch) break;
    }
    int runs_removed = 0;
    WithStore("pruning runs", [&](store::Store& s) { runs_removed = run_lane.Prune(s, kBatch); });
    if (runs_removed > 0) spdlog::info("retention: removed {} finished run(s) and their attempts", runs_removed);
    if (total > 0) {
      spdlog::info("retention: removed {} finished delivery(ies) and their attempts", total);
      if (options.metrics) options.metrics->Pruned(total);
    }
  }

  void Rescue() {
    const auto policies = options.policies;
    int recovered = 0;
    WithStore("rescuing expired leases", [&](store::Store& s) {
      recovered = s.RescueExpired(settings.worker_id, kRescueBatch, [&](const store::ExpiredLease& lease_row) {
        model::DeliveryOutcome o;
        o.delivery_id = lease_row.delivery_id;
        o.attempt = lease_row.previous_attempts + 1;
        o.outcome = "lease_expired";
        o.failure_class = model::FailureClass::kTransient;
        o.retryable = true;
        o.error_summary = retry::SafeSummary("lease held by " + lease_row.lease_owner +
                                             " expired before a result was recorded");
        o.started_us = UnixMicrosNow();
        const model::Policy* policy = policies->Find(lease_row.policy_name);
        if (!policy) {
          o.next_status = model::DeliveryStatus::kRetryScheduled;
          o.retry_delay_ms = kHoldDelay.count();
          return o;
        }
        retry::Verdict v{false, model::FailureClass::kTransient, true, "lease_expired", o.error_summary};
        const auto step = retry::Decide(v, o.attempt - lease_row.attempt_budget_base, *policy, Random());
        o.next_status = step.status;
        // The request may never have been sent: retry promptly, within the policy.
        if (step.status == model::DeliveryStatus::kRetryScheduled) o.retry_delay_ms = 0;
        return o;
      });
    });
    int runs_recovered = 0;
    WithStore("rescuing expired run leases", [&](store::Store& s) { runs_recovered = run_lane.RescueExpired(s, policies); });
    if (runs_recovered > 0) {
      spdlog::warn("recovered {} run(s) whose lease expired (their daemon died or stalled)", runs_recovered);
      if (options.metrics) options.metrics->LeasesRecovered(runs_recovered);
      runs_notified = true;
    }
    if (recovered > 0) {
      spdlog::warn("recovered {} delivery(ies) whose lease expired (their daemon died or stalled)", recovered);
      if (options.metrics) options.metrics->LeasesRecovered(recovered);
      notified = true;
    }
  }

  int PollTimeoutMs() const {
    auto now = Clock::now();
    Clock::time_point until = now + Millis(1000);
    if (!store) until = std::min(until, next_connect);
    else if (!drain_deadline) until = std::min({until, next_poll, next_rescue});
    // (A due retry that found no free slot waits for a completion, not a busy loop.)
    if (store && !drain_deadline && !own_retries_due.empty() && own_retries_due.top() > now) {
      until = std::min(until, own_retries_due.top() + Millis(1));
    }
    if (drain_deadline) until = std::min(until, *drain_deadline);
    if (HasUnwritten()) until = std::min(until, now + Millis(50));
    if (store && outbox_notify_owed) until = std::min(until, next_outbox_notify);
    if (options.heartbeat_interval.count() > 0) until = std::min(until, now + options.heartbeat_interval);
    const auto ms = std::chrono::duration_cast<Millis>(until - now).count();
    return static_cast<int>(std::clamp<std::int64_t>(ms, 0, 1000));
  }

  void WaitForWork() {
    int timeout = PollTimeoutMs();
    // A notification that arrived while another statement ran (a run claim,
    // maintenance) already sits in libpq's buffer, where poll() cannot see
    // it: without this look it would wait for the next poll (up to a second).
    if (store && !drain_deadline && timeout > 0) {
      bool fresh = false;
      WithStore("reading notifications", [&](store::Store& s) {
        if (s.TakeNotifications() > 0) fresh = notified = true;
        if (s.TakeRunNotifications() > 0) fresh = runs_notified = true;
      });
      if (fresh) timeout = 0;
    }
    pollfd fds[4];
    int n = 0;
    fds[n++] = {control_fd, POLLIN, 0};
    fds[n++] = {executor.completion_fd(), POLLIN, 0};
    fds[n++] = {writer.result_fd(), POLLIN, 0};
    if (store && store->socket() >= 0) fds[n++] = {store->socket(), POLLIN, 0};
    ::poll(fds, n, timeout);
    std::uint64_t drained;
    (void)!read(control_fd, &drained, sizeof drained);
  }

  void AdoptNewPolicies() {
    std::shared_ptr<const config::PolicySet> fresh;
    {
      std::lock_guard lock(policies_mu);
      fresh.swap(replacement_policies);
    }
    if (!fresh) return;
    options.policies = std::move(fresh);
    endpoint_rules.clear();
    lease = options.policies->LongestRequestTimeout() + settings.lease_margin;
    wake_held = true;  // deliveries held for an unknown policy may be deliverable now
  }

  void MaybeWakeHeld() {
    if (!wake_held || !store) return;
    int woken = 0;
    if (WithStore("waking held deliveries", [&](store::Store& s) { woken = s.WakeHeld(); })) {
      wake_held = false;
      if (woken > 0) {
        spdlog::info("{} held delivery(ies) made due again", woken);
        notified = true;
      }
    }
  }

  int Run() {
    executor.Start();
    writer.Start();
    int exit_code = 0;
    while (true) {
      if (!EnsureConnected()) {
        exit_code = 1;
        break;
      }
      if (stop_requested && !aborted) {
        executor.AbortAll();
        run_lane.StopSending();
        aborted = true;
        drain_deadline = Clock::now() + Millis(2000);  // a short window to release leases
      }
      if (drain_requested && !drain_deadline) {
        drain_deadline = Clock::now() + settings.shutdown_grace;
        executor.DropWaiting();  // requests not started yet go back to the database unsent
        spdlog::info("draining: {} request(s) in flight, grace {} ms", in_flight.size(),
                     settings.shutdown_grace.count());
      }
      if (drain_deadline && !aborted && Clock::now() >= *drain_deadline) {
        spdlog::warn("grace period over: aborting {} request(s) and releasing their leases", in_flight.size());
        executor.AbortAll();
        run_lane.StopSending();
        aborted = true;
        drain_deadline = Clock::now() + Millis(2000);
      }
      if (options.heartbeat) options.heartbeat();
      AdoptNewPolicies();
      CollectCompletions();
      FlushWrites();
      MaybeNotifyOutbox();
      if (options.metrics) options.metrics->InFlight(static_cast<int>(in_flight.size()) + run_lane.busy());
      if (drain_deadline) {
        const bool settled = in_flight.empty() && run_lane.busy() == 0 && !HasUnwritten();
        if (settled) break;
        if (aborted && Clock::now() >= *drain_deadline) {
          spdlog::error("stopping with {} result(s) unwritten (database unreachable); their leases will expire "
                        "and another daemon will retry them",
                        pending_outcomes.size() + writing_count + pending_releases.size() + in_flight.size());
          break;
        }
      } else {
        MaybeMaintain();
        MaybeWakeHeld();
        MaybeClaim();
      }
      WaitForWork();
    }
    if (outbox_notify_owed) {  // do not leave outbox consumers waiting for their next poll
      next_outbox_notify = Clock::now();
      MaybeNotifyOutbox();
    }
    writer.Stop();
    executor.Stop();
    spdlog::info("dispatcher stopped");
    return exit_code;
  }
};

Dispatcher::Dispatcher(DispatcherOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Dispatcher::~Dispatcher() = default;

int Dispatcher::Run() { return impl_->Run(); }

void Dispatcher::Drain() {
  impl_->drain_requested = true;
  impl_->Wake();
}

void Dispatcher::ReplacePolicies(std::shared_ptr<const config::PolicySet> policies) {
  {
    std::lock_guard lock(impl_->policies_mu);
    impl_->replacement_policies = std::move(policies);
  }
  impl_->Wake();
}

void Dispatcher::Stop() {
  impl_->stop_requested = true;
  impl_->Wake();
}

}  // namespace pgcourier::dispatch

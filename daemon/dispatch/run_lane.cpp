#include "dispatch/run_lane.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "dispatch/run_request.hpp"
#include "json/json.hpp"
#include "limits/limits.hpp"
#include "metrics/metrics.hpp"
#include "retry/classify.hpp"
#include "retry/retry_after.hpp"
#include "retry/text.hpp"
#include "signing/secret_box.hpp"
#include "store/statements.hpp"
#include "store/store.hpp"

namespace pgcourier::dispatch {
namespace {

using Clock = std::chrono::steady_clock;
using model::Millis;

constexpr Millis kHoldDelay{30000};        // a run that cannot be attempted now (config problem) waits this long
constexpr Millis kLimitDelay{50};          // over a connection's limits: look again soon
constexpr Millis kDefaultTokenLifetime{3600000};
constexpr std::size_t kRunExcerptForRef = std::size_t{64} * 1024;  // response bytes read to find external_ref
constexpr int kRescueBatch = 500;

std::int64_t UnixMicrosNow() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t SteadyMs() { return std::chrono::duration_cast<Millis>(Clock::now().time_since_epoch()).count(); }

// Cache key of an OAuth2 token: one per credential version.
std::string TokenKey(const model::Connection& c) {
  return c.credential_id + "#" + std::to_string(c.credential_version) + "#" + c.token_url + "#" + c.client_id;
}

std::string ErrorCode(const model::HttpResult& r, const retry::Verdict& v) {
  if (r.status_code > 0 && (r.transport_error == model::TransportError::kNone ||
                            r.transport_error == model::TransportError::kBodyTooLarge)) {
    return "http_" + std::to_string(r.status_code);
  }
  return v.outcome;
}

struct Token {
  std::string value;
  Clock::time_point expires;
  Millis lifetime{0};
};

// What to do once a token request finishes: a valid token, or the failed result.
using TokenContinuation = std::function<void(const std::string* token, const model::HttpResult* failure)>;

struct InFlightRun {
  model::ClaimedRun run;
  std::shared_ptr<const config::PolicySet> policies;  // keeps `policy` alive
  const model::Policy* policy = nullptr;
};

struct InFlightToken {
  std::string key;
  model::Connection connection;
  std::shared_ptr<const config::PolicySet> policies;
  const model::Policy* policy = nullptr;
};

struct InFlightProbe {
  model::Connection connection;
  int unhealthy_after = 1;
  std::string rotation_version_id;  // set: this probe verifies a rotated credential
  int rotation_version = 0;
};

struct ProbeResult {
  std::string connection_id;
  bool ok = false;
  std::optional<int> status_code;
  std::string error;
  int unhealthy_after = 1;
};

struct RotationResult {
  std::string version_id;
  bool ok = false;
  std::string connection_id;
  std::string error;
};

}  // namespace

struct RunLane::Impl {
  RunLaneContext ctx;
  const config::Settings& settings;

  std::unordered_map<std::uint64_t, InFlightRun> runs;
  std::unordered_map<std::uint64_t, InFlightToken> token_requests;
  std::unordered_map<std::uint64_t, InFlightProbe> probes;
  std::unordered_map<std::string, Token> tokens;                                  // by TokenKey
  std::unordered_map<std::string, std::vector<TokenContinuation>> token_waiters;  // by TokenKey
  int runs_waiting_for_token = 0;
  std::unordered_set<std::string> probing;   // connection ids with a probe in flight
  std::unordered_set<std::string> verifying; // credential version ids being verified

  std::unordered_map<std::string, int> in_flight_by_connection;
  limits::KeyedRateLimiter rate_limits;  // by connection

  std::vector<model::RunOutcome> pending_outcomes;
  std::vector<store::Release> pending_releases;
  struct Degrade {
    std::string connection_id;
    std::string reason;
    int credential_version = 0;  // the version that was refused
  };
  std::vector<Degrade> pending_degrades;
  bool stopping = false;  // after an abort: nothing new is sent
  std::vector<ProbeResult> pending_probes;
  std::vector<RotationResult> pending_rotations;
  bool last_claim_full = false;

  explicit Impl(RunLaneContext context) : ctx(std::move(context)), settings(*ctx.settings) {}

  // Credentials ---------------------------------------------------------------

  // The connection's secret, opened; nullopt with why when it cannot be.
  std::optional<std::string> OpenSecret(const model::Connection& c, std::string& why) const {
    if (c.auth_mode == "none" || c.auth_mode.empty()) return std::string();
    if (c.credential_version == 0 || c.sealed_secret.empty()) {
      why = "credential " + c.credential_id + " has no active version";
      return std::nullopt;
    }
    if (!ctx.secret_box) {
      why = "no master key is configured (master_key_file), so credential " + c.credential_id + " cannot be opened";
      return std::nullopt;
    }
    auto secret = ctx.secret_box->Open(c.sealed_secret, c.credential_id);
    if (!secret) why = "credential " + c.credential_id + " does not open with the configured master key";
    return secret;
  }

  // Calls `then` with a token for the connection (cached, or fetched now).
  void WithToken(const model::Connection& c, const std::string& client_secret, const model::Policy& policy,
                 const std::shared_ptr<const config::PolicySet>& policies, TokenContinuation then) {
    const std::string key = TokenKey(c);
    auto cached = tokens.find(key);
    // Renew token_refresh_margin before expiry, but never sooner than half-way
    // through a short-lived token's life (or every run would fetch one).
    const Millis margin =
        cached == tokens.end() ? Millis{0} : std::min(policy.integration.token_refresh_margin, cached->second.lifetime / 2);
    if (cached != tokens.end() && Clock::now() + margin < cached->second.expires) {
      then(&cached->second.value, nullptr);
      return;
    }
    auto& waiters = token_waiters[key];
    waiters.push_back(std::move(then));
    if (waiters.size() > 1) return;  // a request for this token is already out
    const RequestParts parts = BuildTokenRequest(c, client_secret);
    http::Request r = MakeRequest(parts, policy);
    r.excerpt_bytes = std::size_t{16} * 1024;
    token_requests.emplace(r.token, InFlightToken{key, c, policies, &policy});
    spdlog::debug("connection {}: requesting an OAuth2 token", c.id);
    ctx.executor->Submit({std::move(r)});
  }

  void OnTokenCompletion(InFlightToken t, const model::HttpResult& r) {
    std::optional<json::AccessToken> parsed;
    if (r.transport_error == model::TransportError::kNone && r.status_code >= 200 && r.status_code <= 299) {
      parsed = json::ParseTokenResponse(r.body_excerpt);
    }
    auto waiters = std::move(token_waiters[t.key]);
    token_waiters.erase(t.key);
    if (ctx.metrics && r.transport_error != model::TransportError::kAborted) ctx.metrics->TokenRequest(parsed.has_value());
    if (parsed) {
      // At most a day, whatever the server says (and no overflow).
      const Millis lifetime = parsed->expires_in_seconds > 0
                                  ? Millis(std::min<std::int64_t>(parsed->expires_in_seconds, 86400) * 1000)
                                  : kDefaultTokenLifetime;
      auto& token = tokens[t.key];
      token = Token{std::move(parsed->access_token), Clock::now() + lifetime, lifetime};
      for (auto& then : waiters) then(&token.value, nullptr);
      return;
    }
    model::HttpResult failure = r;
    if (failure.transport_error == model::TransportError::kNone && failure.status_code >= 200 &&
        failure.status_code <= 299) {
      failure.status_code = 502;  // a 2xx without a token is the token server misbehaving: transient
      failure.error_message = "the token endpoint answered without an access_token";
    }
    spdlog::warn("connection {}: OAuth2 token request failed: {}", t.connection.id,
                 retry::SafeSummary(failure.status_code > 0 ? "HTTP " + std::to_string(failure.status_code)
                                                            : failure.error_message));
    for (auto& then : waiters) then(nullptr, &failure);
  }

  http::Request MakeRequest(const RequestParts& parts, const model::Policy& policy) {
    http::Request r;
    r.token = ctx.next_token();
    r.method = parts.method;
    r.url = parts.url;
    r.headers = parts.headers;
    r.body = parts.body;
    r.connect_timeout = policy.connect_timeout;
    r.request_timeout = policy.request_timeout;
    r.excerpt_bytes = 0;
    r.rules = ctx.rules_for(policy);
    return r;
  }

  // Outcomes -------------------------------------------------------------------

  model::RunOutcome BaseOutcome(const model::ClaimedRun& run) const {
    model::RunOutcome o;
    o.run_id = run.id;
    o.expected_owner = settings.worker_id;
    o.attempt = run.Attempt();
    o.credential_version = run.connection.credential_version;
    o.started_us = UnixMicrosNow();
    return o;
  }

  void Record(model::RunOutcome o, double duration_seconds) {
    if (ctx.metrics) {
      ctx.metrics->RunAttemptRecorded(o.outcome, model::ToString(o.failure_class), duration_seconds);
      if (o.next_status != model::RunStatus::kPending) ctx.metrics->RunFinished(model::ToString(o.next_status));
    }
    pending_outcomes.push_back(std::move(o));
  }

  void Poison(const model::ClaimedRun& run, const PoisonReason& reason) {
    spdlog::error("run {} (tenant {}, connection {}, trace {}) is poison: {}; dead-lettered with its envelope",
                  run.id, run.tenant_id, run.connection_id, run.trace_id, reason.message);
    auto o = BaseOutcome(run);
    o.next_status = model::RunStatus::kDeadLettered;
    o.outcome = "poison";
    o.failure_class = model::FailureClass::kPoison;
    o.error_code = reason.error_code;
    o.error_summary = retry::SafeSummary(reason.message);
    o.next_action = model::NextAction::kEscalate;
    Record(std::move(o), 0);
  }

  void Hold(const model::ClaimedRun& run, const std::string& reason) {
    spdlog::warn("run {} (tenant {}, connection {}) held for {} s: {}", run.id, run.tenant_id, run.connection_id,
                 kHoldDelay.count() / 1000, reason);
    pending_releases.push_back({run.id, kHoldDelay.count(), retry::SafeSummary(store::kHeldPrefix + reason)});
  }

  bool WithinLimits(const model::ClaimedRun& run, const model::Policy& policy) {
    const auto& c = run.connection;
    const int max_in_flight = c.max_in_flight > 0 ? c.max_in_flight : policy.limits.max_in_flight;
    if (max_in_flight > 0 && in_flight_by_connection[c.id] >= max_in_flight) {
      pending_releases.push_back({run.id, kLimitDelay.count(), "waiting: connection at its limit of " +
                                                                   std::to_string(max_in_flight) + " in flight"});
      return false;
    }
    std::int64_t wait = 0;
    if (rate_limits.TryTake(c.id, c.rate_per_second, c.rate_burst, policy.limits, SteadyMs(), wait)) return true;
    pending_releases.push_back({run.id, std::max<std::int64_t>(wait, 1), "waiting: connection rate limit"});
    return false;
  }

  // Starts one claimed run: poison check, limits, credential, request.
  void Start(model::ClaimedRun run, const std::shared_ptr<const config::PolicySet>& policies) {
    const model::Policy* policy = policies->Find(run.connection.policy_name.empty() ? "default"
                                                                                    : run.connection.policy_name);
    const std::size_t max_body = policy ? policy->max_body_bytes : (1u << 20);
    if (auto poison = FindPoison(run, max_body)) {
      Poison(run, *poison);
      return;
    }
    if (!policy) {
      Hold(run, "connection " + run.connection_id + " names policy '" + run.connection.policy_name +
                    "', which the policies file does not define");
      return;
    }
    if (!WithinLimits(run, *policy)) return;
    std::string why;
    auto secret = OpenSecret(run.connection, why);
    if (!secret) {
      Hold(run, why);
      return;
    }
    ++in_flight_by_connection[run.connection.id];
    if (run.connection.auth_mode != "oauth2_client_credentials") {
      auto auth = AuthHeaders(run.connection, *secret, {});
      Send(std::move(run), auth, policies, policy);
      return;
    }
    ++runs_waiting_for_token;
    auto shared_run = std::make_shared<model::ClaimedRun>(std::move(run));
    WithToken(shared_run->connection, *secret, *policy, policies,
              [this, shared_run, policies, policy](const std::string* token, const model::HttpResult* failure) {
                --runs_waiting_for_token;
                if (stopping) {
                  Released(*shared_run);
                  pending_releases.push_back({shared_run->id, 0, "released by " + settings.worker_id + " at shutdown"});
                } else if (token) {
                  auto auth = AuthHeaders(shared_run->connection, {}, *token);
                  Send(std::move(*shared_run), auth, policies, policy);
                } else {
                  TokenFailed(*shared_run, *policy, *failure);
                }
              });
  }

  void Send(model::ClaimedRun run, const std::vector<std::string>& auth, const std::shared_ptr<const config::PolicySet>& policies,
            const model::Policy* policy) {
    const RequestParts parts = BuildRunRequest(run, auth, static_cast<std::uint64_t>(ctx.random() * 1.8e19));
    http::Request r = MakeRequest(parts, *policy);
    r.excerpt_bytes = std::max(policy->response_excerpt_bytes, run.external_ref_pointer.empty() ? 0 : kRunExcerptForRef);
    spdlog::debug("run {} attempt {} (tenant {}, connection {}, trace {}) -> {} {}", run.id, run.Attempt(),
                  run.tenant_id, run.connection_id, run.trace_id, parts.method, retry::RedactUrls(parts.url));
    runs.emplace(r.token, InFlightRun{std::move(run), policies, policy});
    ctx.executor->Submit({std::move(r)});
  }

  void Released(const model::ClaimedRun& run) {
    if (--in_flight_by_connection[run.connection.id] <= 0) in_flight_by_connection.erase(run.connection.id);
  }

  // The token for a run could not be had: an attempt that failed before the request.
  void TokenFailed(const model::ClaimedRun& run, const model::Policy& policy, const model::HttpResult& r) {
    Released(run);
    if (r.transport_error == model::TransportError::kAborted) {
      pending_releases.push_back({run.id, 0, "released by " + settings.worker_id + " at shutdown"});
      return;
    }
    const bool refused = r.status_code == 400 || r.status_code == 401 || r.status_code == 403;
    const bool blocked = r.transport_error == model::TransportError::kBlocked;
    auto o = BaseOutcome(run);
    o.outcome = "token_error";
    if (r.status_code > 0) o.status_code = r.status_code;
    o.started_us = r.started_us > 0 ? r.started_us : o.started_us;
    o.duration_ms = r.duration_ms;
    o.error_summary = retry::SafeSummary(
        "the token endpoint of connection " + run.connection_id +
        (r.status_code > 0 ? " answered HTTP " + std::to_string(r.status_code) : " failed: " + r.error_message));
    if (blocked) {
      o.failure_class = model::FailureClass::kBlockedDestination;
      o.error_code = "token_url_blocked";
      o.next_status = model::RunStatus::kFailed;
      o.next_action = model::NextAction::kEscalate;
    } else if (refused) {
      o.failure_class = model::FailureClass::kAuth;
      o.error_code = "token_refused";
      o.next_status = model::RunStatus::kPending;
      o.retry_delay_ms = 0;  // waits: the connection is degraded until its credential changes
      o.next_action = model::NextAction::kEscalate;
      pending_degrades.push_back({run.connection_id,
                                  "the token endpoint refused the client credentials (HTTP " +
                                      std::to_string(r.status_code) + ")",
                                  run.connection.credential_version});
    } else {
      const retry::Verdict v = retry::Classify(r, policy);
      o.failure_class = model::FailureClass::kTransient;
      o.error_code = "token_error";
      o.retryable = true;
      ApplyRetryDecision(run, policy, retry::Verdict{false, model::FailureClass::kTransient, true, v.outcome, ""}, r, o);
    }
    Record(std::move(o), r.duration_ms / 1000.0);
  }

  // Retry or dead-letter after a retryable failure, within the policy's budget.
  // Rate-limited answers do not count against max_attempts up to
  // integration.max_rate_limited_waits.
  void ApplyRetryDecision(const model::ClaimedRun& run, const model::Policy& policy, const retry::Verdict& v,
                          const model::HttpResult& r, model::RunOutcome& o) {
    const bool rate_limited = v.failure_class == model::FailureClass::kRateLimited;
    const int waits = policy.integration.max_rate_limited_waits;
    const int free_waits = std::min(run.rate_limited_attempts, waits);
    if (rate_limited && run.rate_limited_attempts < waits) {
      Millis delay = retry::BackoffDelay(policy.backoff, run.rate_limited_attempts + 1, ctx.random());
      if (auto asked = retry::ParseRetryAfter(r.retry_after, UnixMicrosNow() / 1000)) {
        delay = std::min(std::max(delay, *asked), policy.backoff.cap);
      }
      o.next_status = model::RunStatus::kPending;
      o.retry_delay_ms = delay.count();
      o.next_action = model::NextAction::kRetry;
      return;
    }
    const int budget_attempt = run.Attempt() - run.attempt_budget_base - free_waits;
    const retry::NextStep step = retry::Decide(v, budget_attempt, policy, ctx.random());
    if (step.status == model::DeliveryStatus::kRetryScheduled) {
      o.next_status = model::RunStatus::kPending;
      Millis delay = step.delay;
      if (rate_limited) {
        if (auto asked = retry::ParseRetryAfter(r.retry_after, UnixMicrosNow() / 1000)) {
          delay = std::min(std::max(delay, *asked), policy.backoff.cap);
        }
      }
      o.retry_delay_ms = delay.count();
      o.next_action = model::NextAction::kRetry;
    } else {
      o.next_status = model::RunStatus::kDeadLettered;
      o.next_action = model::NextAction::kDeadLetter;
    }
  }

  void OnRunCompletion(const InFlightRun& f, const model::HttpResult& r) {
    const auto& run = f.run;
    const auto& policy = *f.policy;
    Released(run);
    if (r.transport_error == model::TransportError::kAborted) {
      pending_releases.push_back({run.id, 0, "released by " + settings.worker_id + " at shutdown"});
      return;
    }
    const retry::Verdict v = retry::Classify(r, policy);
    auto o = BaseOutcome(run);
    if (r.status_code > 0) o.status_code = r.status_code;
    o.outcome = v.success ? "completed" : v.outcome;
    o.failure_class = v.failure_class;
    o.retryable = v.retryable;
    o.started_us = r.started_us;
    o.duration_ms = r.duration_ms;
    o.response_excerpt = retry::SanitizeUtf8(r.body_excerpt, policy.response_excerpt_bytes);
    if (!v.success) {
      o.error_code = ErrorCode(r, v);
      o.error_summary = retry::SafeSummary(v.summary);
    }
    switch (v.failure_class) {
      case model::FailureClass::kNone:
        o.next_status = model::RunStatus::kCompleted;
        if (!run.external_ref_pointer.empty()) {
          if (auto ref = json::ValueAtPointer(r.body_excerpt, run.external_ref_pointer)) {
            o.external_ref = retry::SanitizeUtf8(*ref, 1024);
          } else {
            spdlog::warn("run {} completed, but its response has nothing at {} (no external_ref)", run.id,
                         run.external_ref_pointer);
          }
        }
        break;
      case model::FailureClass::kTransient:
      case model::FailureClass::kRateLimited:
        ApplyRetryDecision(run, policy, v, r, o);
        break;
      case model::FailureClass::kAuth:
        OnAuthFailure(run, r, o);
        break;
      case model::FailureClass::kValidation:
      case model::FailureClass::kBlockedDestination:
      case model::FailureClass::kPoison:
        o.next_status = model::RunStatus::kFailed;
        o.next_action = model::NextAction::kEscalate;
        break;
    }
    if (!v.success) {
      spdlog::info("run {} attempt {} (tenant {}, connection {}, trace {}): {} -> {}{}", run.id, run.Attempt(),
                   run.tenant_id, run.connection_id, run.trace_id, o.error_summary, model::ToString(o.next_status),
                   o.retry_delay_ms ? " in " + std::to_string(*o.retry_delay_ms) + " ms" : "");
    }
    Record(std::move(o), r.duration_ms / 1000.0);
  }

  // 401/403: an OAuth2 token gets one fresh fetch; otherwise the credential is
  // wrong: the connection is degraded and its runs wait for a new credential.
  void OnAuthFailure(const model::ClaimedRun& run, const model::HttpResult& r, model::RunOutcome& o) {
    o.next_status = model::RunStatus::kPending;
    o.retry_delay_ms = 0;
    const bool oauth = run.connection.auth_mode == "oauth2_client_credentials";
    if (oauth && run.last_error_code != "auth_refresh") {
      tokens.erase(TokenKey(run.connection));
      o.error_code = "auth_refresh";
      o.next_action = model::NextAction::kRetry;
      o.retryable = true;
      return;
    }
    o.next_action = model::NextAction::kEscalate;
    pending_degrades.push_back({run.connection_id,
                                "the vendor refused the credential (HTTP " + std::to_string(r.status_code) + ", run " +
                                    run.id + ")",
                                run.connection.credential_version});
  }

  // Probes and rotations -------------------------------------------------------

  void StartProbe(const model::Connection& c, const model::Policy& policy,
                  const std::shared_ptr<const config::PolicySet>& policies, InFlightProbe probe) {
    std::string why;
    auto secret = OpenSecret(c, why);
    if (!secret) {
      Finished(probe, false, std::nullopt, why);
      return;
    }
    // `policies` keeps `policy` alive while this waits for a token.
    auto submit = [this, &policy, policies, probe](const std::vector<std::string>& auth) mutable {
      if (stopping) {
        Abandon(probe);
        return;
      }
      http::Request r = MakeRequest(BuildProbeRequest(probe.connection, auth), policy);
      probes.emplace(r.token, std::move(probe));
      ctx.executor->Submit({std::move(r)});
    };
    if (c.auth_mode != "oauth2_client_credentials") {
      submit(AuthHeaders(c, *secret, {}));
      return;
    }
    const bool has_check = !c.health_check_path.empty();
    WithToken(c, *secret, policy, policies,
              [this, probe, has_check, submit](const std::string* token, const model::HttpResult* failure) mutable {
                if (!token && failure->transport_error == model::TransportError::kAborted) {
                  Abandon(probe);
                } else if (!token) {
                  const bool refused = failure->status_code == 400 || failure->status_code == 401 ||
                                       failure->status_code == 403;
                  Finished(probe, false, failure->status_code > 0 ? std::optional<int>(failure->status_code) : std::nullopt,
                           "token request failed: " + (failure->status_code > 0
                                                           ? "HTTP " + std::to_string(failure->status_code)
                                                           : failure->error_message),
                           /*transient=*/!refused);
                } else if (!has_check) {
                  Finished(probe, true, std::nullopt, "");  // a rotation verified by fetching a token
                } else {
                  submit(AuthHeaders(probe.connection, {}, *token));
                }
              });
  }

  // A probe that will not finish (shutdown): forget it without a result.
  void Abandon(const InFlightProbe& probe) {
    if (probe.rotation_version_id.empty()) probing.erase(probe.connection.id);
    else verifying.erase(probe.rotation_version_id);
  }

  // transient: the check could not say yes or no (timeout, 5xx, network). A
  // rotation is then verified again at the next maintenance pass instead of
  // being rejected; a health check counts it as a failure.
  void Finished(const InFlightProbe& probe, bool ok, std::optional<int> status, const std::string& error,
                bool transient = false) {
    const std::string summary = retry::SafeSummary(error);
    if (!probe.rotation_version_id.empty()) {
      verifying.erase(probe.rotation_version_id);
      if (!ok && transient) {
        spdlog::warn("credential version {}: verification inconclusive ({}); trying again", probe.rotation_version_id,
                     summary);
        return;
      }
      pending_rotations.push_back({probe.rotation_version_id, ok, probe.connection.id, summary});
      return;
    }
    probing.erase(probe.connection.id);
    if (ctx.metrics) ctx.metrics->ProbeRecorded(ok);
    if (!ok) spdlog::warn("connection {}: health check failed: {}", probe.connection.id, summary);
    pending_probes.push_back({probe.connection.id, ok, status, summary, probe.unhealthy_after});
  }

  void OnProbeCompletion(const InFlightProbe& probe, const model::HttpResult& r) {
    if (r.transport_error == model::TransportError::kAborted) {
      Abandon(probe);
      return;
    }
    const bool ok = ProbePassed(r, probe.connection.health_check_expected_status);
    if (!ok && (r.status_code == 401 || r.status_code == 403) &&
        probe.connection.auth_mode == "oauth2_client_credentials") {
      tokens.erase(TokenKey(probe.connection));  // refused token: the next probe or run fetches a fresh one
    }
    std::string error;
    if (!ok) {
      error = r.status_code > 0 && r.transport_error == model::TransportError::kNone
                  ? "health check " + probe.connection.health_check_path + " answered HTTP " +
                        std::to_string(r.status_code)
                  : "health check " + probe.connection.health_check_path + " failed: " + r.error_message;
    }
    const bool answered = r.status_code > 0 && (r.transport_error == model::TransportError::kNone ||
                                                r.transport_error == model::TransportError::kBodyTooLarge);
    const bool transient = !answered || r.status_code >= 500 || r.status_code == 408 || r.status_code == 429;
    Finished(probe, ok, r.status_code > 0 ? std::optional<int>(r.status_code) : std::nullopt, error, transient);
  }

  void ProbeConnections(store::Store& store, const std::shared_ptr<const config::PolicySet>& policies) {
    for (const auto& target : store.ConnectionsToProbe()) {
      const auto& c = target.connection;
      if (probing.count(c.id)) continue;
      const model::Policy* policy = policies->Find(c.policy_name);
      if (!policy) continue;  // its runs are held with the reason; nothing to probe with
      const auto interval = policy->integration.health_check_interval.count();
      if (target.since_last_check_ms >= 0 && target.since_last_check_ms < interval) continue;
      probing.insert(c.id);
      StartProbe(c, *policy, policies, InFlightProbe{c, policy->integration.unhealthy_after, "", 0});
    }
  }

  void VerifyRotations(store::Store& store, const std::shared_ptr<const config::PolicySet>& policies) {
    for (const auto& rotation : store.PendingRotations()) {
      if (verifying.count(rotation.version_id)) continue;
      const bool verifiable = rotation.connection &&
                              (!rotation.connection->health_check_path.empty() ||
                               rotation.connection->auth_mode == "oauth2_client_credentials");
      if (!verifiable) {
        spdlog::warn("credential {} version {}: no connection using it has a health check or token endpoint to "
                     "verify with; promoting it unverified",
                     rotation.credential_id, rotation.version);
        pending_rotations.push_back({rotation.version_id, true, rotation.connection ? rotation.connection->id : "", ""});
        continue;
      }
      const model::Policy* policy = policies->Find(rotation.connection->policy_name);
      if (!policy) continue;
      verifying.insert(rotation.version_id);
      spdlog::info("credential {} version {}: verifying with connection {}", rotation.credential_id,
                   rotation.version, rotation.connection->id);
      StartProbe(*rotation.connection, *policy, policies,
                 InFlightProbe{*rotation.connection, 1, rotation.version_id, rotation.version});
    }
  }

  // Writes ----------------------------------------------------------------------

  // Small writes whose statement keeps failing are logged and dropped rather
  // than retried forever; a lost connection propagates (they wait in memory).
  template <typename Item, typename Fn>
  void WriteEach(std::vector<Item>& items, const char* what, Fn&& write) {
    while (!items.empty()) {
      try {
        write(items.back());
      } catch (const store::StoreError& e) {
        if (e.kind() == store::StoreError::Kind::kConnectionLost) throw;
        spdlog::error("{} failed: {}", what, e.what());
      }
      items.pop_back();
    }
  }

  void Flush(store::Store& store) {
    if (!pending_outcomes.empty()) {
      const auto applied = store.RecordRunOutcomes(settings.worker_id, pending_outcomes);
      if (applied.size() != pending_outcomes.size()) {
        spdlog::warn("{} run result(s) were not recorded because their lease had expired and was taken over",
                     pending_outcomes.size() - applied.size());
      }
      pending_outcomes.clear();
    }
    WriteEach(pending_degrades, "marking a connection degraded", [&](const Degrade& d) {
      if (store.DegradeConnection(d.connection_id, d.reason, d.credential_version)) {
        spdlog::warn("connection {} degraded: {}; its runs wait until its credential is rotated "
                     "('pgcourierctl credential rotate') or it is activated again",
                     d.connection_id, d.reason);
      }
    });
    if (!pending_releases.empty()) {
      store.ReleaseRuns(settings.worker_id, pending_releases);
      pending_releases.clear();
    }
    WriteEach(pending_probes, "recording a health check", [&](const ProbeResult& p) {
      const auto health = store.RecordProbe(p.connection_id, p.ok, p.status_code, p.error, p.unhealthy_after);
      spdlog::debug("connection {} health: {}", p.connection_id, health);
    });
    WriteEach(pending_rotations, "finishing a credential rotation", [&](const RotationResult& r) {
      if (!store.FinishRotation(r.version_id, r.ok, r.connection_id, r.error)) return;
      if (ctx.metrics) ctx.metrics->CredentialRotation(r.ok);
      if (r.ok) {
        spdlog::info("credential version {} verified{} and active", r.version_id,
                     r.connection_id.empty() ? "" : " with connection " + r.connection_id);
      } else {
        spdlog::warn("credential version {} failed verification with connection {}: {}; the prior version stays "
                     "active",
                     r.version_id, r.connection_id, r.error);
      }
    });
  }
};

RunLane::RunLane(RunLaneContext context) : impl_(std::make_unique<Impl>(std::move(context))) {}
RunLane::~RunLane() = default;

int RunLane::Claim(store::Store& store, int free_slots, std::chrono::milliseconds lease,
                   const std::shared_ptr<const config::PolicySet>& policies) {
  if (free_slots <= 0) return 0;
  std::vector<std::string> degraded_ok;
  for (const auto& [name, policy] : policies->all()) {
    if (policy.integration.run_when_degraded) degraded_ok.push_back(name);
  }
  const int limit = std::min(free_slots, impl_->settings.max_claim_batch);
  auto claimed = store.ClaimDueRuns(impl_->settings.worker_id, limit, lease, impl_->settings.tenants, degraded_ok);
  impl_->last_claim_full = static_cast<int>(claimed.size()) == limit;
  const int count = static_cast<int>(claimed.size());
  for (auto& run : claimed) impl_->Start(std::move(run), policies);
  return count;
}

bool RunLane::Complete(http::Completion& completion) {
  auto& impl = *impl_;
  if (auto it = impl.runs.find(completion.token); it != impl.runs.end()) {
    InFlightRun f = std::move(it->second);
    impl.runs.erase(it);
    impl.OnRunCompletion(f, completion.result);
    return true;
  }
  if (auto it = impl.token_requests.find(completion.token); it != impl.token_requests.end()) {
    InFlightToken t = std::move(it->second);
    impl.token_requests.erase(it);
    impl.OnTokenCompletion(std::move(t), completion.result);
    return true;
  }
  if (auto it = impl.probes.find(completion.token); it != impl.probes.end()) {
    InFlightProbe p = std::move(it->second);
    impl.probes.erase(it);
    impl.OnProbeCompletion(p, completion.result);
    return true;
  }
  return false;
}

void RunLane::Flush(store::Store& store) { impl_->Flush(store); }

void RunLane::StopSending() { impl_->stopping = true; }

void RunLane::Maintain(store::Store& store, const std::shared_ptr<const config::PolicySet>& policies,
                       bool refresh_metrics) {
  impl_->ProbeConnections(store, policies);
  impl_->VerifyRotations(store, policies);
  auto* m = impl_->ctx.metrics;
  if (!refresh_metrics || !m) return;
  const auto q = store.ReadRunQueueMetrics(impl_->settings.credential_expiry_warning);
  m->RunQueueDepth("due", static_cast<double>(q.due));
  m->RunQueueDepth("scheduled", static_cast<double>(q.scheduled));
  m->RunQueueDepth("waiting", static_cast<double>(q.waiting));
  m->RunQueueDepth("running", static_cast<double>(q.running));
  m->RunQueueDepth("dead_lettered", static_cast<double>(q.dead_lettered));
  m->Connections("unhealthy", static_cast<double>(q.unhealthy_connections));
  m->Connections("degraded", static_cast<double>(q.degraded_connections));
  m->CredentialsExpiring(static_cast<double>(q.credentials_expiring));
  m->OpenEscalations(static_cast<double>(q.open_escalations));
}

int RunLane::RescueExpired(store::Store& store, const std::shared_ptr<const config::PolicySet>& policies) {
  auto& impl = *impl_;
  return store.RescueExpiredRuns(impl.settings.worker_id, kRescueBatch, [&](const store::ExpiredRunLease& lease) {
    model::RunOutcome o;
    o.run_id = lease.run_id;
    o.attempt = lease.previous_attempts + 1;
    o.outcome = "lease_expired";
    o.failure_class = model::FailureClass::kTransient;
    o.error_code = "lease_expired";
    o.retryable = true;
    o.error_summary = retry::SafeSummary("lease held by " + lease.lease_owner + " expired before a result was recorded");
    o.started_us = UnixMicrosNow();
    o.next_status = model::RunStatus::kPending;
    o.retry_delay_ms = 0;
    o.next_action = model::NextAction::kRetry;
    if (const model::Policy* policy = policies->Find(lease.policy_name)) {
      const int budget_attempt = o.attempt - lease.attempt_budget_base -
                                 std::min(lease.rate_limited_attempts, policy->integration.max_rate_limited_waits);
      if (budget_attempt >= policy->max_attempts) {
        o.next_status = model::RunStatus::kDeadLettered;
        o.retry_delay_ms.reset();
        o.next_action = model::NextAction::kDeadLetter;
      }
    }
    return o;
  });
}

int RunLane::Prune(store::Store& store, int batch) {
  return store.PruneRuns(impl_->settings.retention_completed, impl_->settings.retention_dead_lettered, batch);
}

int RunLane::busy() const {
  return static_cast<int>(impl_->runs.size() + impl_->token_requests.size() + impl_->probes.size()) +
         impl_->runs_waiting_for_token;
}

bool RunLane::has_unwritten() const {
  const auto& i = *impl_;
  return !i.pending_outcomes.empty() || !i.pending_releases.empty() || !i.pending_degrades.empty() ||
         !i.pending_probes.empty() || !i.pending_rotations.empty();
}

bool RunLane::backlog() const { return impl_->last_claim_full; }

}  // namespace pgcourier::dispatch

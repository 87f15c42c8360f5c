#include "lanes/runs/lane.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "json/json.hpp"
#include "lanes/hold_log.hpp"
#include "lanes/leases.hpp"
#include "lanes/limiter.hpp"
#include "lanes/runs/decide.hpp"
#include "lanes/runs/request.hpp"
#include "lanes/runs/rotation.hpp"
#include "lanes/runs/tokens.hpp"
#include "lanes/runs/writes.hpp"
#include "retry/text.hpp"
#include "signing/secret_box.hpp"

namespace pgcourier::lanes {
namespace {

using runs::Degrade;
using runs::RunWrites;
using runs::TokenCache;
using Steady = std::chrono::steady_clock::time_point;

constexpr std::size_t kRunExcerptForRef = std::size_t{64} * 1024;  // response bytes read to find external_ref
constexpr int kRescueBatch = 500;
// Rotation commands start at most this many per maintenance tick (they run
// on the engine thread, one after another; runs/rotation.hpp bounds each).
constexpr int kRotationsPerTick = 3;

struct InFlightRun {
  model::ClaimedRun run;
  std::shared_ptr<const config::PolicySet> policies;  // keeps `policy` alive
  const model::Policy* policy = nullptr;
};

struct InFlightToken {
  std::string key;
  model::Connection connection;
};

struct InFlightProbe {
  model::Connection connection;
  int unhealthy_after = 1;
  std::string rotation_version_id;  // set: this probe verifies a rotated credential
};

class RunLane final : public Lane {
 public:
  explicit RunLane(const LaneContext& context)
      : ctx_(context),
        settings_(context.settings),
        tokens_(context.clock),
        holds_(context.clock, "run(s)", "connection") {}

  const char* name() const override { return "runs"; }
  const char* channel() const override { return "courier_runs"; }

  void Notified() override { notified_ = true; }
  bool WantsClaim(Steady /*now*/, bool poll_due) const override { return notified_ || poll_due || backlog_; }
  bool backlog() const override { return backlog_; }
  std::optional<Steady> NextWake() const override { return std::nullopt; }

  ClaimResult Claim(const Stores& main, int slots) override {
    const int limit = std::min(slots, settings_.max_claim_batch);
    if (limit <= 0) return {};
    const auto policies = ctx_.policies.current();
    store::RunClaimRequest request;
    request.claim = {settings_.worker_id, limit, settings_.lease_duration, settings_.tenants};
    for (const auto& [name, policy] : policies->all()) {
      if (policy.integration.run_when_degraded) request.degraded_ok_policies.push_back(name);
    }
    auto claimed = main.runs.Claim(request);
    notified_ = false;
    backlog_ = static_cast<int>(claimed.size()) == limit;
    const ClaimResult result{static_cast<int>(claimed.size()), backlog_};
    for (auto& run : claimed) Start(std::move(run), policies);
    return result;
  }

  bool Complete(http::Completion& c) override {
    if (auto it = runs_.find(c.token); it != runs_.end()) {
      InFlightRun f = std::move(it->second);
      runs_.erase(it);
      OnRunCompletion(f, c.result);
      return true;
    }
    if (auto it = token_requests_.find(c.token); it != token_requests_.end()) {
      InFlightToken t = std::move(it->second);
      token_requests_.erase(it);
      OnTokenCompletion(t, c.result);
      return true;
    }
    if (auto it = probes_.find(c.token); it != probes_.end()) {
      InFlightProbe p = std::move(it->second);
      probes_.erase(it);
      OnProbeCompletion(p, c.result);
      return true;
    }
    return false;
  }

  int busy() const override {
    return static_cast<int>(runs_.size() + token_requests_.size() + probes_.size() + waiting_for_token_.size());
  }

  void StopSending() override { stopping_ = true; }

  std::unique_ptr<WriteJob> TakeWrites() override {
    holds_.Flush();
    return TakeJob(next_);
  }

  std::size_t unwritten() const override { return next_.items(); }

  std::unique_ptr<WriteJob> Heartbeat() override {
    std::vector<std::string> ids(waiting_for_token_.begin(), waiting_for_token_.end());
    for (const auto& [token, f] : runs_) ids.push_back(f.run.id);
    if (ids.empty()) return nullptr;
    return std::make_unique<RenewLeases>(LeasedWork::kRuns, std::move(ids), settings_.lease_duration);
  }

  void Written(std::unique_ptr<WriteJob> written) override {
    if (auto* heartbeat = dynamic_cast<RenewLeases*>(written.get())) {
      heartbeat->Report();
      return;
    }
    auto& job = static_cast<RunWrites&>(*written);
    if (job.rescue) {
      ReportRescued(ctx_.metrics, LeasedWork::kRuns, job.applied.size());
      notified_ |= !job.applied.empty();
      return;
    }
    if (job.applied.size() != job.outcomes.size()) {
      spdlog::warn("{} run result(s) were not recorded because their lease had expired and was taken over",
                   job.outcomes.size() - job.applied.size());
    }
    for (std::size_t i = 0; i < job.degrades.size(); ++i) {
      if (!job.degraded[i]) continue;
      spdlog::warn(
          "connection {} degraded: {}; its runs wait until its credential is rotated "
          "('pgcourierctl credential rotate') or it is activated again",
          job.degrades[i].connection_id, job.degrades[i].reason);
    }
    for (std::size_t i = 0; i < job.rotations.size(); ++i) {
      if (!job.finished[i]) continue;
      const auto& r = job.rotations[i];
      ctx_.metrics.CredentialRotation(r.ok);
      if (r.ok) {
        spdlog::info("credential version {} verified{} and active", r.version_id,
                     r.connection_id.empty() ? "" : " with connection " + r.connection_id);
      } else {
        spdlog::warn(
            "credential version {} failed verification with connection {}: {}; the prior version stays "
            "active",
            r.version_id, r.connection_id, r.error);
      }
    }
  }

  std::unique_ptr<WriteJob> Rescue(const Stores& main) override {
    auto expired = main.runs.FindExpired(kRescueBatch);
    if (expired.empty()) return nullptr;
    auto job = std::make_unique<RunWrites>();
    job->rescue = true;
    const auto& policies = *ctx_.policies.current();
    const auto now_us = ctx_.clock.UnixMicros();
    for (const auto& lease : expired) {
      job->outcomes.push_back(runs::RescuedRun(lease, policies.Find(lease.policy_name), now_us));
    }
    return job;
  }

  void Maintain(const Stores& main) override {
    const auto policies = ctx_.policies.current();
    ProbeConnections(main, policies);
    RunRotationCommands(main);
    VerifyRotations(main, policies);
    const auto q = main.runs.ReadQueueMetrics(settings_.credential_expiry_warning);
    auto& m = ctx_.metrics;
    m.RunQueueDepth("due", static_cast<double>(q.due));
    m.RunQueueDepth("scheduled", static_cast<double>(q.scheduled));
    m.RunQueueDepth("waiting", static_cast<double>(q.waiting));
    m.RunQueueDepth("running", static_cast<double>(q.running));
    m.RunQueueDepth("dead_lettered", static_cast<double>(q.dead_lettered));
    m.Connections("unhealthy", static_cast<double>(q.unhealthy_connections));
    m.Connections("degraded", static_cast<double>(q.degraded_connections));
    m.CredentialsExpiring(static_cast<double>(q.credentials_expiring));
    m.OpenEscalations(static_cast<double>(q.open_escalations));
  }

  int Prune(const Stores& retention) const override {
    const int removed = retention.runs.Prune(settings_.retention_completed, settings_.retention_dead_lettered, 5000);
    if (removed > 0) spdlog::info("retention: removed {} finished run(s) and their attempts", removed);
    return removed;
  }

  int WakeHeld(const Stores& /*main*/) override { return 0; }  // held runs are found again by their delay

  store::ShiftedSchedules ShiftSchedules(const Stores& main, const store::ScheduleShift& shift) override {
    auto shifted = main.runs.ShiftSchedules(shift);
    if (shifted.due_times > 0) notified_ = true;  // what moved back is probably due now
    return shifted;
  }

 private:
  // Credentials ---------------------------------------------------------------

  // The connection's secret, opened; nullopt with why when it cannot be.
  std::optional<std::string> OpenSecret(const model::Connection& c, std::string& why) const {
    if (c.auth_mode == "none" || c.auth_mode.empty()) return std::string();
    if (c.credential_version == 0 || c.sealed_secret.empty()) {
      why = "credential " + c.credential_id + " has no active version";
      return std::nullopt;
    }
    if (!ctx_.secret_box) {
      why = "no master key is configured (master_key_file), so credential " + c.credential_id + " cannot be opened";
      return std::nullopt;
    }
    auto secret = ctx_.secret_box->Open(c.sealed_secret, c.credential_id);
    if (!secret) why = "credential " + c.credential_id + " does not open with the configured master key";
    return secret;
  }

  // Calls `then` with a token for the connection (cached, or fetched now).
  void WithToken(const model::Connection& c, const std::string& client_secret, const model::Policy& policy,
                 runs::TokenContinuation then) {
    const std::string key = TokenCache::KeyOf(c);
    if (const std::string* token = tokens_.Fresh(key, policy.integration.token_refresh_margin)) {
      then(token, nullptr);
      return;
    }
    if (!tokens_.Wait(key, std::move(then))) return;  // a request for this token is already out
    http::Request r = MakeRequest(runs::BuildTokenRequest(c, client_secret), policy);
    r.excerpt_bytes = std::size_t{16} * 1024;
    token_requests_.emplace(r.token, InFlightToken{key, c});
    spdlog::debug("connection {}: requesting an OAuth2 token", c.id);
    ctx_.executor.Submit({std::move(r)});
  }

  void OnTokenCompletion(const InFlightToken& t, const model::HttpResult& r) {
    std::optional<json::AccessToken> parsed;
    if (r.transport_error == model::TransportError::kNone && r.status_code >= 200 && r.status_code <= 299) {
      parsed = json::ParseTokenResponse(r.body_excerpt);
    }
    if (r.transport_error != model::TransportError::kAborted) ctx_.metrics.TokenRequest(parsed.has_value());
    if (parsed) {
      tokens_.Resolved(t.key, parsed->access_token, parsed->expires_in_seconds);
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
    tokens_.Failed(t.key, failure);
  }

  http::Request MakeRequest(const runs::RequestParts& parts, const model::Policy& policy) {
    http::Request r;
    r.token = ctx_.next_token();
    r.method = parts.method;
    r.url = parts.url;
    r.headers = parts.headers;
    r.body = parts.body;
    r.connect_timeout = policy.connect_timeout;
    r.request_timeout = policy.request_timeout;
    r.excerpt_bytes = 0;
    r.rules = ctx_.policies.RulesFor(policy);
    return r;
  }

  // Runs -------------------------------------------------------------------------

  void Record(model::RunOutcome o, double duration_seconds) {
    ctx_.metrics.RunAttemptRecorded(o.outcome, model::ToString(o.failure_class), duration_seconds);
    if (o.next_status != model::RunStatus::kPending) ctx_.metrics.RunFinished(model::ToString(o.next_status));
    next_.outcomes.push_back(std::move(o));
  }

  void Hold(const model::ClaimedRun& run, const std::string& reason) {
    holds_.Held(run.connection_id, reason);
    next_.releases.push_back({run.id, kHoldDelay.count(), retry::SafeSummary(kHeldPrefix + reason)});
  }

  void ReleaseAtShutdown(const model::ClaimedRun& run) {
    next_.releases.push_back({run.id, 0, "released by " + settings_.worker_id + " at shutdown"});
  }

  // Starts one claimed run: admission, limits, credential, request.
  void Start(model::ClaimedRun run, const std::shared_ptr<const config::PolicySet>& policies) {
    const model::Policy* policy =
        policies->Find(run.connection.policy_name.empty() ? "default" : run.connection.policy_name);
    const auto admission = runs::AdmitRun(run, policy);
    if (admission.action == runs::RunAdmission::Action::kPoison) {
      spdlog::error("run {} (tenant {}, connection {}, trace {}) is poison: {}; dead-lettered with its envelope",
                    run.id, run.tenant_id, run.connection_id, run.trace_id, admission.reason);
      Record(runs::Poisoned(run, admission.error_code, admission.reason, ctx_.clock.UnixMicros()), 0);
      return;
    }
    if (admission.action == runs::RunAdmission::Action::kHold) {
      Hold(run, admission.reason);
      return;
    }
    if (run.provider_wait_ms > 0) {  // the provider's budget, shared by every daemon (claim_runs.sql)
      next_.releases.push_back({run.id, run.provider_wait_ms, "provider " + run.provider_key + " rate limit"});
      return;
    }
    const auto& c = run.connection;
    if (auto wait = limiter_.Admit(c.id, LimitSpec{c.max_in_flight, c.rate_per_second, c.rate_burst, &policy->limits},
                                   ctx_.clock.SteadyMillis())) {
      next_.releases.push_back({run.id, wait->delay_ms, wait->reason});
      return;
    }
    std::string why;
    auto secret = OpenSecret(c, why);
    if (!secret) {
      limiter_.Done(c.id);
      Hold(run, why);
      return;
    }
    if (c.auth_mode != "oauth2_client_credentials") {
      Send(std::move(run), runs::AuthHeaders(c, *secret, {}), policies, policy);
      return;
    }
    waiting_for_token_.insert(run.id);
    auto shared_run = std::make_shared<model::ClaimedRun>(std::move(run));
    WithToken(shared_run->connection, *secret, *policy,
              [this, shared_run, policies, policy](const std::string* token, const model::HttpResult* failure) {
                waiting_for_token_.erase(shared_run->id);
                if (stopping_) {
                  limiter_.Done(shared_run->connection.id);
                  ReleaseAtShutdown(*shared_run);
                } else if (token) {
                  Send(std::move(*shared_run), runs::AuthHeaders(shared_run->connection, {}, *token), policies, policy);
                } else {
                  limiter_.Done(shared_run->connection.id);
                  if (failure->transport_error == model::TransportError::kAborted) {
                    ReleaseAtShutdown(*shared_run);
                    return;
                  }
                  auto done = runs::TokenFailed(*shared_run, *policy, *failure, ctx_.random(), ctx_.clock.UnixMicros());
                  if (done.degrade) next_.degrades.push_back(std::move(*done.degrade));
                  Record(std::move(done.outcome), failure->duration_ms / 1000.0);
                }
              });
  }

  void Send(model::ClaimedRun run, const std::vector<std::string>& auth,
            const std::shared_ptr<const config::PolicySet>& policies, const model::Policy* policy) {
    const runs::RequestParts parts =
        runs::BuildRunRequest(run, auth, static_cast<std::uint64_t>(ctx_.random() * 1.8e19));
    http::Request r = MakeRequest(parts, *policy);
    r.excerpt_bytes =
        std::max(policy->response_excerpt_bytes, run.external_ref_pointer.empty() ? 0 : kRunExcerptForRef);
    spdlog::debug("run {} attempt {} (tenant {}, connection {}, trace {}) -> {} {}", run.id, run.Attempt(),
                  run.tenant_id, run.connection_id, run.trace_id, parts.method, retry::RedactUrls(parts.url));
    runs_.emplace(r.token, InFlightRun{std::move(run), policies, policy});
    ctx_.executor.Submit({std::move(r)});
  }

  void OnRunCompletion(const InFlightRun& f, const model::HttpResult& r) {
    const auto& run = f.run;
    limiter_.Done(run.connection.id);
    if (r.transport_error == model::TransportError::kAborted) {
      ReleaseAtShutdown(run);
      return;
    }
    auto done = runs::CompleteRun(run, *f.policy, r, ctx_.random(), ctx_.clock.UnixMicros() / 1000);
    if (done.drop_token) tokens_.Drop(TokenCache::KeyOf(run.connection));
    if (done.degrade) next_.degrades.push_back(std::move(*done.degrade));
    const auto& o = done.outcome;
    if (o.next_status == model::RunStatus::kCompleted && !run.external_ref_pointer.empty() && o.external_ref.empty()) {
      spdlog::warn("run {} completed, but its response has nothing at {} (no external_ref)", run.id,
                   run.external_ref_pointer);
    }
    if (o.failure_class != model::FailureClass::kNone) {
      spdlog::info("run {} attempt {} (tenant {}, connection {}, trace {}): {} -> {}{}", run.id, run.Attempt(),
                   run.tenant_id, run.connection_id, run.trace_id, o.error_summary, model::ToString(o.next_status),
                   o.retry_delay_ms ? " in " + std::to_string(*o.retry_delay_ms) + " ms" : "");
    }
    Record(std::move(done.outcome), r.duration_ms / 1000.0);
  }

  // Probes and rotations ----------------------------------------------------------

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
      if (stopping_) {
        Abandon(probe);
        return;
      }
      http::Request r = MakeRequest(runs::BuildProbeRequest(probe.connection, auth), policy);
      probes_.emplace(r.token, std::move(probe));
      ctx_.executor.Submit({std::move(r)});
    };
    if (c.auth_mode != "oauth2_client_credentials") {
      submit(runs::AuthHeaders(c, *secret, {}));
      return;
    }
    const bool has_check = !c.health_check_path.empty();
    WithToken(c, *secret, policy,
              [this, probe, has_check, submit](const std::string* token, const model::HttpResult* failure) mutable {
                if (!token && failure->transport_error == model::TransportError::kAborted) {
                  Abandon(probe);
                } else if (!token) {
                  const bool refused =
                      failure->status_code == 400 || failure->status_code == 401 || failure->status_code == 403;
                  Finished(probe, false,
                           failure->status_code > 0 ? std::optional<int>(failure->status_code) : std::nullopt,
                           "token request failed: " + (failure->status_code > 0
                                                           ? "HTTP " + std::to_string(failure->status_code)
                                                           : failure->error_message),
                           /*transient=*/!refused);
                } else if (!has_check) {
                  Finished(probe, true, std::nullopt, "");  // a rotation verified by fetching a token
                } else {
                  submit(runs::AuthHeaders(probe.connection, {}, *token));
                }
              });
  }

  // A probe that will not finish (shutdown): forget it without a result.
  void Abandon(const InFlightProbe& probe) {
    if (probe.rotation_version_id.empty())
      probing_.erase(probe.connection.id);
    else
      verifying_.erase(probe.rotation_version_id);
  }

  // transient: the check could not say yes or no. A rotation is then
  // verified again at the next maintenance pass instead of being rejected; a
  // health check counts it as a failure.
  void Finished(const InFlightProbe& probe, bool ok, std::optional<int> status, const std::string& error,
                bool transient = false) {
    const std::string summary = retry::SafeSummary(error);
    if (!probe.rotation_version_id.empty()) {
      verifying_.erase(probe.rotation_version_id);
      if (!ok && transient) {
        spdlog::warn("credential version {}: verification inconclusive ({}); trying again", probe.rotation_version_id,
                     summary);
        return;
      }
      next_.rotations.push_back({probe.rotation_version_id, ok, probe.connection.id, summary});
      return;
    }
    probing_.erase(probe.connection.id);
    ctx_.metrics.ProbeRecorded(ok);
    if (!ok) spdlog::warn("connection {}: health check failed: {}", probe.connection.id, summary);
    next_.probes.push_back({probe.connection.id, ok, status, summary, probe.unhealthy_after});
  }

  void OnProbeCompletion(const InFlightProbe& probe, const model::HttpResult& r) {
    if (r.transport_error == model::TransportError::kAborted) {
      Abandon(probe);
      return;
    }
    const auto v = runs::JudgeProbe(probe.connection, r);
    if (v.drop_token) tokens_.Drop(TokenCache::KeyOf(probe.connection));
    Finished(probe, v.ok, v.status_code, v.error, v.transient);
  }

  void ProbeConnections(const Stores& main, const std::shared_ptr<const config::PolicySet>& policies) {
    for (const auto& target : main.runs.ConnectionsToProbe()) {
      const auto& c = target.connection;
      if (probing_.count(c.id)) continue;
      const model::Policy* policy = policies->Find(c.policy_name);
      if (!policy) continue;  // its runs are held with the reason; nothing to probe with
      const auto interval = policy->integration.health_check_interval.count();
      if (target.since_last_check_ms >= 0 && target.since_last_check_ms < interval) continue;
      probing_.insert(c.id);
      StartProbe(c, *policy, policies, InFlightProbe{c, policy->integration.unhealthy_after, ""});
    }
  }

  // Rotation policies: the due rotations with a command (courier.start_due_rotations also raises those
  // without one). The command's output becomes the rotating version, which VerifyRotations then checks
  // with a test call. It runs on this thread, bounded by kRotationCommandTimeout; its output is never logged.
  void RunRotationCommands(const Stores& main) {
    for (const auto& due : main.runs.StartDueRotations(settings_.worker_id, kRotationsPerTick)) {
      auto fail = [&](const std::string& why) {
        spdlog::warn("credential {}: rotation command {} failed: {}; the prior version stays active", due.credential_id,
                     due.command, why);
        main.runs.FailRotation(due.credential_id, settings_.worker_id, why);
      };
      if (!ctx_.secret_box) {
        fail("no master key is configured (master_key_file), so the new secret cannot be sealed");
        continue;
      }
      spdlog::info("credential {}: rotation due, running its rotation command {}", due.credential_id, due.command);
      auto result = runs::RunRotationCommand(due.command);
      if (!result.ok) {
        fail(result.error);
        continue;
      }
      std::string secret = std::move(result.output);
      std::string sealed;
      std::string fingerprint;
      try {
        sealed = ctx_.secret_box->Seal(secret, due.credential_id);
        fingerprint = ctx_.secret_box->Fingerprint(secret);
      } catch (const std::exception& e) {
        fail(std::string("the new secret could not be sealed: ") + e.what());
        continue;
      }
      const auto version = main.runs.StoreRotationResult(due.credential_id, settings_.worker_id, sealed, fingerprint);
      if (version) {
        spdlog::info("credential {}: rotation command produced version {}; verifying it before it becomes active",
                     due.credential_id, *version);
      } else {
        spdlog::warn(
            "credential {}: the rotation command's secret was not stored (the active secret again, or "
            "the rotation was taken over)",
            due.credential_id);
      }
    }
  }

  void VerifyRotations(const Stores& main, const std::shared_ptr<const config::PolicySet>& policies) {
    for (const auto& rotation : main.runs.PendingRotations()) {
      if (verifying_.count(rotation.version_id)) continue;
      const bool verifiable = rotation.connection && (!rotation.connection->health_check_path.empty() ||
                                                      rotation.connection->auth_mode == "oauth2_client_credentials");
      if (!verifiable) {
        spdlog::warn(
            "credential {} version {}: no connection using it has a health check or token endpoint to "
            "verify with; promoting it unverified",
            rotation.credential_id, rotation.version);
        next_.rotations.push_back({rotation.version_id, true, rotation.connection ? rotation.connection->id : "", ""});
        continue;
      }
      const model::Policy* policy = policies->Find(rotation.connection->policy_name);
      if (!policy) continue;
      verifying_.insert(rotation.version_id);
      spdlog::info("credential {} version {}: verifying with connection {}", rotation.credential_id, rotation.version,
                   rotation.connection->id);
      StartProbe(*rotation.connection, *policy, policies, InFlightProbe{*rotation.connection, 1, rotation.version_id});
    }
  }

  const LaneContext ctx_;
  const config::Settings& settings_;
  TokenCache tokens_;
  HoldLog holds_;
  Limiter limiter_{"connection"};
  std::unordered_map<std::uint64_t, InFlightRun> runs_;
  std::unordered_map<std::uint64_t, InFlightToken> token_requests_;
  std::unordered_map<std::uint64_t, InFlightProbe> probes_;
  std::unordered_set<std::string> waiting_for_token_;  // run ids claimed, waiting for an OAuth2 token
  std::unordered_set<std::string> probing_;            // connection ids with a probe in flight
  std::unordered_set<std::string> verifying_;          // credential version ids being verified
  RunWrites next_;
  bool notified_ = true;
  bool backlog_ = false;
  bool stopping_ = false;  // after an abort: nothing new is sent
};

}  // namespace

std::unique_ptr<Lane> NewRunLane(const LaneContext& context) { return std::make_unique<RunLane>(context); }

}  // namespace pgcourier::lanes

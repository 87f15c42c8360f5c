#include "lanes/deliveries/lane.hpp"

#include <spdlog/spdlog.h>

#include <limits>
#include <queue>
#include <unordered_map>
#include <vector>

#include "lanes/deliveries/decide.hpp"
#include "lanes/deliveries/fairness.hpp"
#include "lanes/deliveries/request.hpp"
#include "lanes/deliveries/scan_floors.hpp"
#include "lanes/leases.hpp"
#include "lanes/deliveries/signing_keys.hpp"
#include "lanes/hold_log.hpp"
#include "lanes/limiter.hpp"
#include "limits/limits.hpp"
#include "retry/text.hpp"

namespace pgcourier::lanes {
namespace {

using deliveries::Admission;
using model::Millis;
using Steady = std::chrono::steady_clock::time_point;

constexpr int kRescueBatch = 500;

// A terminal state reached, for the metrics once it is written.
struct Finish {
  std::int64_t event_created_us = 0;
  model::DeliveryStatus status = model::DeliveryStatus::kFailed;
};

// One turn's writes of the lane (or one rescue's). Parts already written
// are not written again when the writer retries the job.
class DeliveryWrites final : public WriteJob {
 public:
  std::vector<model::DeliveryOutcome> outcomes;
  std::vector<Finish> finished;  // metrics, for the outcomes that apply
  std::vector<store::Release> releases;
  std::vector<std::pair<std::string, std::string>> disables;  // (subscription, reason)
  std::vector<std::pair<std::string, std::string>> pauses;
  bool fifo_finished = false;  // a FIFO delivery finished: the next of its key may be claimable
  bool rescue = false;

  store::RecordedOutcomes recorded;  // after Execute

  std::size_t items() const override { return outcomes.size() + releases.size() + disables.size() + pauses.size(); }
  bool empty() const { return items() == 0; }

  void Execute(const Stores& writer, const std::string& worker) override {
    if (!outcomes_written_) {
      recorded = writer.deliveries.Record(worker, outcomes);
      outcomes_written_ = true;
    }
    if (!releases_written_) {
      writer.deliveries.Release(worker, releases);
      releases_written_ = true;
    }
    while (disables_written_ < disables.size()) {
      const auto& [subscription, reason] = disables[disables_written_];
      writer.deliveries.DisableSubscription(subscription, reason);
      ++disables_written_;
    }
    while (pauses_written_ < pauses.size()) {
      const auto& [subscription, reason] = pauses[pauses_written_];
      writer.deliveries.PauseSubscription(subscription, reason);
      ++pauses_written_;
    }
  }

 private:
  bool outcomes_written_ = false;
  bool releases_written_ = false;
  std::size_t disables_written_ = 0;
  std::size_t pauses_written_ = 0;
};

// The heartbeat of the lane's requests in flight.
struct InFlight {
  model::ClaimedDelivery delivery;
  std::shared_ptr<const config::PolicySet> policies;  // keeps `policy` alive
  const model::Policy* policy = nullptr;
};

class DeliveryLane final : public Lane {
 public:
  explicit DeliveryLane(const LaneContext& context)
      : ctx_(context),
        settings_(context.settings),
        keys_(context.secret_box),
        holds_(context.clock, "delivery(ies)", "subscription"),
        fairness_(context.clock, context.settings.concurrency),
        floors_(context.clock) {}

  const char* name() const override { return "deliveries"; }
  const char* channel() const override { return "courier_deliveries"; }

  void Notified() override { notified_ = true; }

  bool WantsClaim(Steady now, bool poll_due) const override {
    if (notified_ || poll_due || backlog_ || (!own_retries_due_.empty() && own_retries_due_.top() <= now)) return true;
    // A bounded claim ran: the full scan that finds what its floors hid is due.
    const auto full = floors_.full_scan_due();
    return full && *full <= now;
  }

  bool backlog() const override { return backlog_; }

  std::optional<Steady> NextWake() const override {
    std::optional<Steady> wake = floors_.full_scan_due();
    if (!own_retries_due_.empty() && (!wake || own_retries_due_.top() < *wake)) wake = own_retries_due_.top();
    return wake;
  }

  ClaimResult Claim(const Stores& main, int slots) override {
    const int limit = std::min(slots, settings_.max_claim_batch);
    // The memory budget: payloads held at once (in flight), and per claim.
    const std::int64_t bytes_left = static_cast<std::int64_t>(settings_.max_in_flight_bytes) - bytes_in_flight_;
    if (limit <= 0) return {};
    if (bytes_left <= 0) {
      // Claim again once a finished delivery gives bytes back (not before:
      // the loop would spin on claims that may not take anything).
      backlog_ = false;
      memory_full_ = true;
      return {};
    }
    const Steady started = ctx_.clock.Now();
    store::DeliveryClaimRequest request;
    request.claim = {settings_.worker_id, limit, settings_.lease_duration, settings_.tenants};
    request.max_bytes = std::min<std::int64_t>(settings_.max_claim_bytes, bytes_left);
    // A payload larger than the claim's share still goes, so none is ever
    // stuck: one within what the budget has left, or, one at a time, a
    // "large" one beyond it, which is held outside the budget so that the
    // others' deliveries go on meanwhile. Payload bytes held at once: at most
    // max_in_flight_bytes plus one payload (itself at most max_payload_bytes).
    request.max_first_bytes = large_id_.empty() ? std::numeric_limits<std::int64_t>::max() : bytes_left;
    fairness_.Tidy();
    fairness_.Bound(request);
    const bool full_scan = floors_.Bound(request);
    const auto claim_started = ctx_.clock.Now();
    auto batch = main.deliveries.Claim(request);
    if (full_scan) floors_.FullScanTook(ctx_.clock.Now() - claim_started);
    floors_.Claimed(batch.first_attempts);
    auto& claimed = batch.rows;
    // Only a batch's first row can be beyond the budget (the others fit in it).
    for (const auto& d : claimed) {
      if (d.payload_bytes > bytes_left) large_id_ = d.id;
    }
    notified_ = false;
    while (!own_retries_due_.empty() && own_retries_due_.top() <= started) own_retries_due_.pop();
    // More is due now when the claim was full, or when it locked due rows it
    // could not take (over its byte budget, or retries beside first
    // attempts): the next claim can go on at once. A subscription that filled
    // its window probably has more too: when one of its requests finishes
    // (Unheld) the lane claims again.
    const int n = static_cast<int>(claimed.size());
    backlog_ = n == limit || batch.candidates > n;
    std::vector<std::string> subscriptions;
    subscriptions.reserve(claimed.size());
    for (const auto& d : claimed) subscriptions.push_back(d.subscription_id);
    fairness_.Claimed(subscriptions);
    const ClaimResult result{n, backlog_};
    if (!claimed.empty()) {
      ctx_.metrics.ClaimBatch(result.claimed);
      Dispatch(std::move(claimed));
    }
    return result;
  }

  bool Complete(http::Completion& c) override {
    auto it = in_flight_.find(c.token);
    if (it == in_flight_.end()) return false;
    InFlight f = std::move(it->second);
    in_flight_.erase(it);
    const auto& d = f.delivery;
    const auto& r = c.result;
    limiter_.Done(d.subscription_id);
    if (r.transport_error == model::TransportError::kAborted) {  // shutdown, or never got a slot
      Unheld(d, deliveries::EndpointSignal::kNeither);
      next_.releases.push_back({d.id, 0, "released by " + settings_.worker_id + ": " + r.error_message});
      return true;
    }
    auto done = deliveries::Complete(d, *f.policy, r, ctx_.random(), ctx_.clock.UnixMicros() / 1000);
    Unheld(d, deliveries::SignalOf(done.verdict.success, done.verdict.outcome, r.status_code));
    UpdateEndpointHealth(d, *f.policy, done.verdict);
    policy_of_subscription_[d.subscription_id] = d.policy_name;
    if (!d.ordering_key.empty() && model::IsTerminal(done.outcome.next_status)) next_.fifo_finished = true;
    if (done.disable_reason) next_.disables.emplace_back(d.subscription_id, *done.disable_reason);
    ctx_.metrics.AttemptRecorded(done.verdict.outcome, model::ToString(done.verdict.failure_class),
                                 r.duration_ms / 1000.0);
    const auto& o = done.outcome;
    if (!done.verdict.success) {
      spdlog::info("delivery {} attempt {} (tenant {}, trace {}): {} -> {}{}", d.id, d.Attempt(), d.tenant_id,
                   d.trace_id, o.error_summary, model::ToString(o.next_status),
                   o.retry_delay_ms ? " in " + std::to_string(*o.retry_delay_ms) + " ms" : "");
    }
    Finished(d, std::move(done.outcome));
    return true;
  }

  int busy() const override { return static_cast<int>(in_flight_.size()); }

  void StopSending() override {}  // every delivery is submitted at once; the executor's abort covers them

  std::unique_ptr<WriteJob> TakeWrites() override {
    holds_.Flush();
    return TakeJob(next_);
  }

  std::size_t unwritten() const override { return next_.items(); }

  std::unique_ptr<WriteJob> Heartbeat() override {
    if (in_flight_.empty()) return nullptr;
    std::vector<std::string> ids;
    ids.reserve(in_flight_.size());
    for (const auto& [token, f] : in_flight_) ids.push_back(f.delivery.id);
    return std::make_unique<RenewLeases>(LeasedWork::kDeliveries, std::move(ids), settings_.lease_duration);
  }

  void Written(std::unique_ptr<WriteJob> written) override {
    if (auto* heartbeat = dynamic_cast<RenewLeases*>(written.get())) {
      heartbeat->Report();
      return;
    }
    auto& job = static_cast<DeliveryWrites&>(*written);
    const auto& applied = job.recorded.applied;
    if (job.rescue) {
      ReportRescued(ctx_.metrics, LeasedWork::kDeliveries, applied.size());
      notified_ |= !applied.empty();
      return;
    }
    const auto written_at = ctx_.clock.Now();
    bool terminal = false;
    for (const auto& o : job.outcomes) {
      terminal |= model::IsTerminal(o.next_status);
      // The retry was written with next_attempt_at = the transaction's now() + delay, no later than this moment
      // + delay: this daemon claims then, instead of waiting for the next poll.
      if (o.next_status == model::DeliveryStatus::kRetryScheduled && o.retry_delay_ms && *o.retry_delay_ms > 0 &&
          *o.retry_delay_ms < settings_.poll_interval.count()) {
        own_retries_due_.push(written_at + Millis(*o.retry_delay_ms));
      }
    }
    if (terminal && settings_.delivery_events != "none") ctx_.outbox.Owe();
    CheckAutoPause(job.recorded.health);
    if (job.fifo_finished) notified_ = true;
    if (applied.size() != job.outcomes.size()) {
      const auto stale = job.outcomes.size() - applied.size();
      spdlog::warn("{} result(s) were not recorded because their lease had expired and was taken over; "
                   "those deliveries will be attempted again",
                   stale);
      ctx_.metrics.StaleOutcomes(static_cast<int>(stale));
    }
    const auto now_us = ctx_.clock.UnixMicros();
    for (const auto& f : job.finished) {
      ctx_.metrics.DeliveryFinished(model::ToString(f.status), static_cast<double>(now_us - f.event_created_us) / 1e6);
    }
    for (const auto& [subscription, reason] : job.disables) spdlog::warn("subscription {} disabled: {}", subscription, reason);
    for (const auto& [subscription, reason] : job.pauses) {
      spdlog::warn("subscription {} paused automatically: {}; its deliveries are held until "
                   "'pgcourierctl subscription resume {}'",
                   subscription, reason, subscription);
    }
  }

  std::unique_ptr<WriteJob> Rescue(const Stores& main) override {
    ctx_.metrics.OpenCircuits(CountOpenCircuits());
    auto expired = main.deliveries.FindExpired(kRescueBatch);
    if (expired.empty()) return nullptr;
    auto job = std::make_unique<DeliveryWrites>();
    job->rescue = true;
    const auto& policies = *ctx_.policies.current();
    const auto now_us = ctx_.clock.UnixMicros();
    for (const auto& lease : expired) {
      job->outcomes.push_back(deliveries::Rescued(lease, policies.Find(lease.policy_name), ctx_.random(), now_us));
    }
    return job;
  }

  void Maintain(const Stores& main) override {
    const auto q = main.deliveries.ReadQueueMetrics();
    auto& m = ctx_.metrics;
    m.QueueDepth("due", static_cast<double>(q.due));
    m.QueueDepth("scheduled", static_cast<double>(q.scheduled));
    m.QueueDepth("held", static_cast<double>(q.held));
    m.QueueDepth("delivering", static_cast<double>(q.delivering));
    m.QueueDepth("dead_lettered", static_cast<double>(q.dead_lettered));
    m.PausedSubscriptions(static_cast<double>(q.paused_subscriptions));
    m.OldestDueSeconds(q.oldest_due_seconds);
    // KPI snapshots and thresholds (courier.maintain_kpis): incremental, a few minutes' buckets at most per tick.
    constexpr int kKpiMinutesPerTick = 60;
    main.deliveries.MaintainKpis(kKpiMinutesPerTick);
  }

  int Prune(const Stores& retention) const override {
    constexpr int kBatch = 5000;
    constexpr int kBatchesPerTick = 10;  // bounded work per tick; the rest waits for the next one
    int total = 0;
    for (int i = 0; i < kBatchesPerTick; ++i) {
      const int removed = retention.deliveries.Prune(settings_.retention_completed, settings_.retention_dead_lettered, kBatch);
      total += removed;
      if (removed < kBatch) break;
    }
    if (total > 0) {
      spdlog::info("retention: removed {} finished delivery(ies) and their attempts", total);
      ctx_.metrics.Pruned(total);
    }
    return total;
  }

  store::ShiftedSchedules ShiftSchedules(const Stores& main, const store::ScheduleShift& shift) override {
    auto shifted = main.deliveries.ShiftSchedules(shift);
    if (shifted.due_times > 0) {
      notified_ = true;  // what moved back is probably due now, and below the floors
      floors_.Reset();
    }
    return shifted;
  }

  int WakeHeld(const Stores& main) override {
    const int woken = main.deliveries.WakeHeld();
    if (woken > 0) {
      spdlog::info("{} held delivery(ies) made due again", woken);
      notified_ = true;
    }
    return woken;
  }

 private:
  void Dispatch(std::vector<model::ClaimedDelivery> claimed) {
    std::vector<http::Request> requests;
    requests.reserve(claimed.size());
    const auto policies = ctx_.policies.current();
    const std::int64_t now_us = ctx_.clock.UnixMicros();
    for (auto& d : claimed) {
      Held(d);
      const model::Policy* policy = policies->Find(d.policy_name);
      const Admission admission = deliveries::Admit(d, policy, policy ? CheckedUrl(d.url) : kNoProblem,
                                                    settings_.policies_file);
      switch (admission.action) {
        case Admission::Action::kHold:
          Unheld(d, deliveries::EndpointSignal::kNeither);
          Hold(d, admission.reason);
          continue;
        case Admission::Action::kFail:
          Unheld(d, deliveries::EndpointSignal::kNeither);
          Finished(d, deliveries::Unsent(d, model::DeliveryStatus::kFailed, admission.outcome,
                                         admission.failure_class, admission.reason, now_us));
          continue;
        case Admission::Action::kRelease:
          Unheld(d, deliveries::EndpointSignal::kNeither);
          next_.releases.push_back({d.id, admission.delay_ms, admission.reason});
          continue;
        case Admission::Action::kSend:
          break;
      }
      std::string reason;
      auto keys = keys_.For(d, reason);
      if (!keys) {
        Unheld(d, deliveries::EndpointSignal::kNeither);
        Hold(d, reason);
        continue;
      }
      if (!WithinLimits(d, *policy)) {
        Unheld(d, deliveries::EndpointSignal::kNeither);
        continue;
      }
      http::Request r;
      r.body = deliveries::TakeEnvelope(d);  // the payload's own buffer
      if (auto too_large = deliveries::BodyTooLarge(d, r.body.size(), *policy, now_us)) {
        limiter_.Done(d.subscription_id);
        Unheld(d, deliveries::EndpointSignal::kNeither);
        Finished(d, std::move(*too_large));
        continue;
      }
      r.token = ctx_.next_token();
      r.url = d.url;
      r.headers = deliveries::BuildHeaders(d, r.body, *keys, now_us / 1000000,
                                           static_cast<std::uint64_t>(ctx_.random() * 1.8e19));
      r.connect_timeout = policy->connect_timeout;
      r.request_timeout = policy->request_timeout;
      r.excerpt_bytes = policy->response_excerpt_bytes;
      r.rules = ctx_.policies.RulesFor(*policy);
      spdlog::debug("delivery {} attempt {} (tenant {}, event {}, trace {}) -> sending", d.id, d.Attempt(),
                    d.tenant_id, d.event_id, d.trace_id);
      in_flight_.emplace(r.token, InFlight{std::move(d), policies, policy});
      requests.push_back(std::move(r));
    }
    ctx_.executor.Submit(std::move(requests));
  }

  // A claimed delivery counts against its endpoint's window, its tenant's
  // share and the memory budget from its claim until it is written back
  // (sent and completed, or given back unsent).
  void Held(const model::ClaimedDelivery& d) {
    fairness_.Started(d.subscription_id, d.tenant_id);
    if (d.id != large_id_) bytes_in_flight_ += d.payload_bytes;
  }
  void Unheld(const model::ClaimedDelivery& d, deliveries::EndpointSignal signal) {
    fairness_.Finished(d.subscription_id, d.tenant_id, signal);
    if (d.id == large_id_) {
      large_id_.clear();
    } else {
      bytes_in_flight_ -= d.payload_bytes;
    }
    if (memory_full_ || fairness_.worth_claiming(d.subscription_id)) {
      memory_full_ = false;
      backlog_ = true;
    }
  }

  void Hold(const model::ClaimedDelivery& d, const std::string& reason) {
    holds_.Held(d.subscription_id, reason);
    next_.releases.push_back({d.id, kHoldDelay.count(), retry::SafeSummary(kHeldPrefix + reason)});
    ctx_.metrics.HeldDeliveries(1);
  }

  void Finished(const model::ClaimedDelivery& d, model::DeliveryOutcome outcome) {
    if (model::IsTerminal(outcome.next_status)) next_.finished.push_back({d.event_created_us, outcome.next_status});
    next_.outcomes.push_back(std::move(outcome));
  }

  // The subscription's in-flight and rate limits, then its endpoint's
  // circuit. Last: a half-open circuit lets its one probe through here, and
  // the probe must then really be sent (no later gate may hold it back).
  bool WithinLimits(const model::ClaimedDelivery& d, const model::Policy& policy) {
    const std::int64_t now = ctx_.clock.SteadyMillis();
    const LimitSpec spec{d.max_in_flight, d.rate_per_second, d.rate_burst, &policy.limits};
    if (auto wait = limiter_.Admit(d.subscription_id, spec, now)) {
      next_.releases.push_back({d.id, wait->delay_ms, wait->reason});
      return false;
    }
    if (policy.circuit_breaker.failures > 0) {
      const std::string endpoint = deliveries::EndpointOf(d.url);
      std::int64_t wait = 0;
      if (!breakers_[endpoint].Allow(now, wait)) {
        limiter_.Done(d.subscription_id);
        next_.releases.push_back({d.id, wait, "waiting: circuit open for " + endpoint});
        return false;
      }
    }
    return true;
  }

  void UpdateEndpointHealth(const model::ClaimedDelivery& d, const model::Policy& policy, const retry::Verdict& verdict) {
    if (policy.circuit_breaker.failures <= 0) return;
    auto& breaker = breakers_[deliveries::EndpointOf(d.url)];
    // Only failures that say the endpoint is unwell open the circuit, not a rejected request.
    const bool unwell = verdict.failure_class == model::FailureClass::kTransient ||
                        verdict.failure_class == model::FailureClass::kRateLimited;
    if (verdict.success || !unwell) {
      breaker.OnSuccess();
    } else if (breaker.OnFailure(ctx_.clock.SteadyMillis(), policy.circuit_breaker.failures,
                                 policy.circuit_breaker.cooldown.count())) {
      spdlog::warn("circuit opened for {} after {} consecutive failure(s): deliveries to it wait {} ms, then one "
                   "probe goes through",
                   deliveries::EndpointOf(d.url), policy.circuit_breaker.failures,
                   policy.circuit_breaker.cooldown.count());
    }
  }

  int CountOpenCircuits() const {
    const std::int64_t now = ctx_.clock.SteadyMillis();
    int open = 0;
    for (const auto& [endpoint, breaker] : breakers_) {
      if (breaker.state(now) != limits::CircuitBreaker::State::kClosed) ++open;
    }
    return open;
  }

  // Pauses subscriptions whose counters crossed their policy's auto_pause limits.
  void CheckAutoPause(const std::vector<store::SubscriptionHealth>& health) {
    for (const auto& h : health) {
      const auto name = policy_of_subscription_.find(h.subscription_id);
      if (name == policy_of_subscription_.end()) continue;
      const model::Policy* policy = ctx_.policies.current()->Find(name->second);
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
      if (!reason.empty()) next_.pauses.emplace_back(h.subscription_id, std::move(reason));
    }
  }

  // http::CheckDeliveryUrl, remembered per URL (it parses the URL with curl;
  // a subscription's URL is checked once, not once per delivery).
  const std::optional<std::string>& CheckedUrl(const std::string& url) {
    auto it = url_checks_.find(url);
    if (it == url_checks_.end()) {
      if (url_checks_.size() >= 10000) url_checks_.clear();
      it = url_checks_.emplace(url, http::CheckDeliveryUrl(url)).first;
    }
    return it->second;
  }

  static inline const std::optional<std::string> kNoProblem{};

  const LaneContext ctx_;
  const config::Settings& settings_;
  deliveries::SigningKeys keys_;
  HoldLog holds_;
  deliveries::Fairness fairness_;
  deliveries::ScanFloors floors_;
  std::int64_t bytes_in_flight_ = 0;  // payload bytes of the claimed deliveries not finished yet
  bool memory_full_ = false;          // the last claim found no bytes left in the budget
  std::string large_id_;              // the one delivery held beyond the budget (see Claim), if any
  Limiter limiter_{"subscription"};
  std::unordered_map<std::string, limits::CircuitBreaker> breakers_;  // by endpoint (scheme://host:port)
  std::unordered_map<std::string, std::string> policy_of_subscription_;  // for auto-pause after a write
  std::unordered_map<std::string, std::optional<std::string>> url_checks_;  // URL -> why it is not valid
  std::unordered_map<std::uint64_t, InFlight> in_flight_;
  DeliveryWrites next_;  // this turn's writes, not yet handed to the writer
  bool notified_ = true;  // claim at start-up without waiting for a NOTIFY
  bool backlog_ = false;
  // When retries this daemon scheduled (shorter than the poll interval) fall
  // due: it claims then, instead of at the next poll.
  std::priority_queue<Steady, std::vector<Steady>, std::greater<>> own_retries_due_;
};

}  // namespace

std::unique_ptr<Lane> NewDeliveryLane(const LaneContext& context) { return std::make_unique<DeliveryLane>(context); }

}  // namespace pgcourier::lanes

#include "lanes/runs/decide.hpp"

#include <algorithm>

#include "json/json.hpp"
#include "lanes/rescue.hpp"
#include "lanes/runs/request.hpp"
#include "retry/retry_after.hpp"
#include "retry/text.hpp"

namespace pgcourier::lanes::runs {
namespace {

std::string ErrorCode(const model::HttpResult& r, const retry::Verdict& v) {
  if (r.status_code > 0 && (r.transport_error == model::TransportError::kNone ||
                            r.transport_error == model::TransportError::kBodyTooLarge)) {
    return "http_" + std::to_string(r.status_code);
  }
  return v.outcome;
}

// Retry or dead-letter after a retryable failure, within the policy's budget.
void ApplyRetryDecision(const model::ClaimedRun& run, const model::Policy& policy, const retry::Verdict& v,
                        const model::HttpResult& r, double unit_random, std::int64_t now_unix_ms,
                        model::RunOutcome& o) {
  const bool rate_limited = v.failure_class == model::FailureClass::kRateLimited;
  const int waits = policy.integration.max_rate_limited_waits;
  const int free_waits = std::min(run.rate_limited_attempts, waits);
  if (rate_limited && run.rate_limited_attempts < waits) {
    const auto delay = retry::BackoffDelay(policy.backoff, run.rate_limited_attempts + 1, unit_random);
    o.next_status = model::RunStatus::kPending;
    o.retry_delay_ms = retry::HonourRetryAfter(delay, r.retry_after, now_unix_ms, policy.backoff.cap).count();
    o.next_action = model::NextAction::kRetry;
    return;
  }
  const int budget_attempt = run.Attempt() - run.attempt_budget_base - free_waits;
  const retry::NextStep step = retry::Decide(v, budget_attempt, policy, unit_random);
  if (step.status == model::DeliveryStatus::kRetryScheduled) {
    o.next_status = model::RunStatus::kPending;
    o.retry_delay_ms =
        (rate_limited ? retry::HonourRetryAfter(step.delay, r.retry_after, now_unix_ms, policy.backoff.cap)
                      : step.delay)
            .count();
    o.next_action = model::NextAction::kRetry;
  } else {
    o.next_status = model::RunStatus::kDeadLettered;
    o.next_action = model::NextAction::kDeadLetter;
  }
}

}  // namespace

RunAdmission AdmitRun(const model::ClaimedRun& run, const model::Policy* policy) {
  const std::size_t max_body = policy ? policy->max_body_bytes : (std::size_t{1} << 20);
  if (auto poison = FindPoison(run, max_body)) {
    return {RunAdmission::Action::kPoison, poison->error_code, poison->message};
  }
  if (!policy) {
    return {RunAdmission::Action::kHold, "",
            "connection " + run.connection_id + " names policy '" + run.connection.policy_name +
                "', which the policies file does not define"};
  }
  return {};
}

model::RunOutcome BaseOutcome(const model::ClaimedRun& run, std::int64_t now_unix_us) {
  model::RunOutcome o;
  o.run_id = run.id;
  o.attempt = run.Attempt();
  o.credential_version = run.connection.credential_version;
  o.started_us = now_unix_us;
  return o;
}

model::RunOutcome Poisoned(const model::ClaimedRun& run, const std::string& error_code, const std::string& reason,
                           std::int64_t now_unix_us) {
  auto o = BaseOutcome(run, now_unix_us);
  o.next_status = model::RunStatus::kDeadLettered;
  o.outcome = "poison";
  o.failure_class = model::FailureClass::kPoison;
  o.error_code = error_code;
  o.error_summary = retry::SafeSummary(reason);
  o.next_action = model::NextAction::kEscalate;
  return o;
}

RunCompleted CompleteRun(const model::ClaimedRun& run, const model::Policy& policy, const model::HttpResult& r,
                         double unit_random, std::int64_t now_unix_ms) {
  RunCompleted done;
  const retry::Verdict v = retry::Classify(r, policy);
  auto& o = done.outcome;
  o = BaseOutcome(run, r.started_us);
  if (r.status_code > 0) o.status_code = r.status_code;
  o.outcome = v.success ? "completed" : v.outcome;
  o.failure_class = v.failure_class;
  o.retryable = v.retryable;
  o.duration_ms = r.duration_ms;
  o.response_excerpt = retry::SafeSummary(r.body_excerpt, policy.response_excerpt_bytes);
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
        }
      }
      break;
    case model::FailureClass::kTransient:
    case model::FailureClass::kRateLimited:
      ApplyRetryDecision(run, policy, v, r, unit_random, now_unix_ms, o);
      break;
    case model::FailureClass::kAuth: {
      // An OAuth2 token gets one fresh fetch; otherwise the credential is
      // wrong: the connection is degraded and its runs wait for a new one.
      o.next_status = model::RunStatus::kPending;
      o.retry_delay_ms = 0;
      const bool oauth = run.connection.auth_mode == "oauth2_client_credentials";
      if (oauth && run.last_error_code != "auth_refresh") {
        done.drop_token = true;
        o.error_code = "auth_refresh";
        o.next_action = model::NextAction::kRetry;
        o.retryable = true;
      } else {
        o.next_action = model::NextAction::kEscalate;
        done.degrade = Degrade{run.connection_id,
                               "the vendor refused the credential (HTTP " + std::to_string(r.status_code) + ", run " +
                                   run.id + ")",
                               run.connection.credential_version};
      }
      break;
    }
    case model::FailureClass::kValidation:
    case model::FailureClass::kBlockedDestination:
    case model::FailureClass::kPoison:
      o.next_status = model::RunStatus::kFailed;
      o.next_action = model::NextAction::kEscalate;
      break;
  }
  return done;
}

RunCompleted TokenFailed(const model::ClaimedRun& run, const model::Policy& policy, const model::HttpResult& r,
                         double unit_random, std::int64_t now_unix_us) {
  RunCompleted done;
  const bool refused = r.status_code == 400 || r.status_code == 401 || r.status_code == 403;
  const bool blocked = r.transport_error == model::TransportError::kBlocked;
  auto& o = done.outcome;
  o = BaseOutcome(run, r.started_us > 0 ? r.started_us : now_unix_us);
  o.outcome = "token_error";
  if (r.status_code > 0) o.status_code = r.status_code;
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
    done.degrade = Degrade{run.connection_id,
                           "the token endpoint refused the client credentials (HTTP " +
                               std::to_string(r.status_code) + ")",
                           run.connection.credential_version};
  } else {
    const retry::Verdict v = retry::Classify(r, policy);
    o.failure_class = model::FailureClass::kTransient;
    o.error_code = "token_error";
    o.retryable = true;
    ApplyRetryDecision(run, policy, retry::Verdict{false, model::FailureClass::kTransient, true, v.outcome, ""}, r,
                       unit_random, now_unix_us / 1000, o);
  }
  return done;
}

model::RunOutcome RescuedRun(const store::ExpiredRunLease& lease, const model::Policy* policy,
                             std::int64_t now_unix_us) {
  model::RunOutcome o;
  RecordLeaseExpired(o, lease.lease_owner, lease.previous_attempts, now_unix_us);
  o.run_id = lease.run_id;
  o.error_code = "lease_expired";
  o.next_status = model::RunStatus::kPending;
  o.retry_delay_ms = 0;
  o.next_action = model::NextAction::kRetry;
  if (policy) {
    const int budget_attempt = o.attempt - lease.attempt_budget_base -
                               std::min(lease.rate_limited_attempts, policy->integration.max_rate_limited_waits);
    if (budget_attempt >= policy->max_attempts) {
      o.next_status = model::RunStatus::kDeadLettered;
      o.retry_delay_ms.reset();
      o.next_action = model::NextAction::kDeadLetter;
    }
  }
  return o;
}

ProbeVerdict JudgeProbe(const model::Connection& c, const model::HttpResult& r) {
  ProbeVerdict v;
  v.ok = ProbePassed(r, c.health_check_expected_status);
  if (!v.ok && (r.status_code == 401 || r.status_code == 403) && c.auth_mode == "oauth2_client_credentials") {
    v.drop_token = true;  // refused token: the next probe or run fetches a fresh one
  }
  if (!v.ok) {
    v.error = r.status_code > 0 && r.transport_error == model::TransportError::kNone
                  ? "health check " + c.health_check_path + " answered HTTP " + std::to_string(r.status_code)
                  : "health check " + c.health_check_path + " failed: " + r.error_message;
  }
  const bool answered = r.status_code > 0 && (r.transport_error == model::TransportError::kNone ||
                                              r.transport_error == model::TransportError::kBodyTooLarge);
  v.transient = !answered || r.status_code >= 500 || r.status_code == 408 || r.status_code == 429;
  if (r.status_code > 0) v.status_code = r.status_code;
  return v;
}

}  // namespace pgcourier::lanes::runs

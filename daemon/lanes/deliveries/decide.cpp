#include "lanes/deliveries/decide.hpp"

#include <algorithm>

#include "lanes/hold_log.hpp"
#include "lanes/rescue.hpp"
#include "retry/retry_after.hpp"
#include "retry/text.hpp"

namespace pgcourier::lanes::deliveries {

Admission Admit(const model::ClaimedDelivery& d, const model::Policy* policy,
                const std::optional<std::string>& url_problem, const std::string& policies_file) {
  using Action = Admission::Action;
  if (!policy) {
    return {Action::kHold, "", model::FailureClass::kNone,
            "policy '" + d.policy_name + "' of subscription " + d.subscription_id + " is not defined in " +
                policies_file};
  }
  if (!d.subscription_active) {
    return {Action::kFail, "subscription_inactive", model::FailureClass::kValidation,
            "subscription " + d.subscription_id + " is not active"};
  }
  if (!d.tenant_consistent) {
    return {Action::kFail, "tenant_mismatch", model::FailureClass::kPoison,
            "delivery " + d.id + " of tenant " + d.tenant_id +
                " does not match the tenant of its event or subscription " + d.subscription_id + "; not sent"};
  }
  if (url_problem) return {Action::kFail, "invalid_url", model::FailureClass::kValidation, *url_problem};
  if (d.subscription_paused) {
    return {Action::kRelease, "", model::FailureClass::kNone,
            std::string(kHeldPrefix) + "subscription " + d.subscription_id + " is paused", kUntilResumed};
  }
  return {};
}

model::DeliveryOutcome Unsent(const model::ClaimedDelivery& d, model::DeliveryStatus status, std::string outcome,
                              model::FailureClass failure_class, const std::string& summary,
                              std::int64_t now_unix_us) {
  model::DeliveryOutcome o;
  o.delivery_id = d.id;
  o.subscription_id = d.subscription_id;
  o.attempt = d.Attempt();
  o.next_status = status;
  o.outcome = std::move(outcome);
  o.failure_class = failure_class;
  o.retryable = false;
  o.error_summary = retry::SafeSummary(summary);
  o.started_us = now_unix_us;
  return o;
}

std::optional<model::DeliveryOutcome> BodyTooLarge(const model::ClaimedDelivery& d, std::size_t body_bytes,
                                                   const model::Policy& policy, std::int64_t now_unix_us) {
  if (body_bytes <= policy.max_body_bytes) return std::nullopt;
  return Unsent(d, model::DeliveryStatus::kFailed, "payload_too_large", model::FailureClass::kPoison,
                "the webhook body would be " + std::to_string(body_bytes) +
                    " bytes, over the policy's max_body_bytes (" + std::to_string(policy.max_body_bytes) +
                    "); not sent",
                now_unix_us);
}

Completed Complete(const model::ClaimedDelivery& d, const model::Policy& policy, const model::HttpResult& r,
                   double unit_random, std::int64_t now_unix_ms) {
  Completed c;
  c.verdict = retry::Classify(r, policy);
  const auto& verdict = c.verdict;
  retry::NextStep step = retry::Decide(verdict, d.BudgetAttempt(), policy, unit_random);
  if (step.status == model::DeliveryStatus::kRetryScheduled &&
      verdict.failure_class == model::FailureClass::kRateLimited) {
    step.delay = retry::HonourRetryAfter(step.delay, r.retry_after, now_unix_ms, policy.backoff.cap);
  }
  if (r.status_code == 410) c.disable_reason = "the endpoint answered 410 Gone (delivery " + d.id + ")";
  auto& o = c.outcome;
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
  o.response_excerpt = retry::SafeSummary(r.body_excerpt, policy.response_excerpt_bytes);
  o.started_us = r.started_us;
  o.duration_ms = r.duration_ms;
  return c;
}

model::DeliveryOutcome Rescued(const store::ExpiredLease& lease, const model::Policy* policy, double unit_random,
                               std::int64_t now_unix_us) {
  model::DeliveryOutcome o;
  RecordLeaseExpired(o, lease.lease_owner, lease.previous_attempts, now_unix_us);
  o.delivery_id = lease.delivery_id;
  o.subscription_id = lease.subscription_id;
  if (!policy) {
    o.next_status = model::DeliveryStatus::kRetryScheduled;
    o.retry_delay_ms = kHoldDelay.count();
    return o;
  }
  const retry::Verdict v{false, model::FailureClass::kTransient, true, "lease_expired", o.error_summary};
  const auto step = retry::Decide(v, o.attempt - lease.attempt_budget_base, *policy, unit_random);
  o.next_status = step.status;
  // The request may never have been sent: retry promptly, within the policy.
  if (step.status == model::DeliveryStatus::kRetryScheduled) o.retry_delay_ms = 0;
  return o;
}

std::string EndpointOf(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  const auto authority_start = scheme_end + 3;
  const auto path_start = std::min(url.find_first_of("/?#", authority_start), url.size());
  auto host_start = url.rfind('@', path_start);
  host_start = (host_start == std::string::npos || host_start < authority_start) ? authority_start : host_start + 1;
  return url.substr(0, authority_start) + url.substr(host_start, path_start - host_start);
}

}  // namespace pgcourier::lanes::deliveries

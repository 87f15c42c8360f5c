// Classification rules, in order:
//   1. A received status (status_code != 0) decides when the response was
//      complete, or when we stopped reading it ourselves (kBodyTooLarge: a 200
//      with a huge body is delivered). A response that timed out or broke off
//      after its status line is not an answer: rule 2 applies, so it is
//      retried instead of counted as delivered.
//        2xx          -> success, "delivered"
//        3xx          -> "redirect", validation, never retried (not followed)
//        429, and 503 with Retry-After -> "http_error", rate_limited, retryable iff listed
//        401, 403     -> "http_error", auth, retryable iff listed
//        listed       -> "http_error", transient, retryable
//        anything else (other 1xx/4xx, unlisted 5xx) -> "http_error", validation
//   2. Otherwise the transport error decides: kBlocked is blocked_destination,
//      not retried; every other kind (including kAborted,
//      kBodyTooLarge and a result with neither status nor error) is transient
//      and retryable; the outcome is model::ToString(error) and the summary the
//      transport's message (or the outcome when there is none).
// "Listed" means inside one of policy.retryable_statuses.
#include "retry/classify.hpp"

#include <algorithm>
#include <cmath>

namespace pgcourier::retry {
namespace {

using model::FailureClass;
using model::TransportError;

bool Listed(const model::Policy& policy, int status) {
  return std::any_of(policy.retryable_statuses.begin(), policy.retryable_statuses.end(),
                     [status](const model::StatusRange& range) { return range.Contains(status); });
}

Verdict Failure(FailureClass failure_class, bool retryable, std::string outcome, std::string summary) {
  Verdict verdict;
  verdict.failure_class = failure_class;
  verdict.retryable = retryable;
  verdict.outcome = std::move(outcome);
  verdict.summary = std::move(summary);
  return verdict;
}

Verdict ClassifyStatus(const model::HttpResult& result, const model::Policy& policy) {
  const int status = result.status_code;
  std::string summary = "HTTP " + std::to_string(status);
  if (status >= 200 && status <= 299) {
    Verdict verdict;
    verdict.success = true;
    verdict.outcome = "delivered";
    verdict.summary = std::move(summary);
    return verdict;
  }
  if (status >= 300 && status <= 399) {
    summary += result.location.empty() ? " redirect not followed" : " redirect to " + result.location + " not followed";
    return Failure(FailureClass::kValidation, false, "redirect", std::move(summary));
  }
  if (!result.retry_after.empty()) summary += " (Retry-After: " + result.retry_after + ")";
  const bool listed = Listed(policy, status);
  // A 503 that says when to come back is the receiver rate limiting us too.
  if (status == 429 || (status == 503 && !result.retry_after.empty())) {
    return Failure(FailureClass::kRateLimited, listed, "http_error", std::move(summary));
  }
  if (status == 401 || status == 403) return Failure(FailureClass::kAuth, listed, "http_error", std::move(summary));
  if (listed) return Failure(FailureClass::kTransient, true, "http_error", std::move(summary));
  return Failure(FailureClass::kValidation, false, "http_error", std::move(summary));
}

}  // namespace

Verdict Classify(const model::HttpResult& result, const model::Policy& policy) {
  const bool complete = result.transport_error == TransportError::kNone ||
                        result.transport_error == TransportError::kBodyTooLarge;
  if (result.status_code != 0 && complete) return ClassifyStatus(result, policy);
  // No status: the transport decides. kNone without a status should not
  // happen; it is treated like any other transport failure.
  const TransportError error =
      result.transport_error == TransportError::kNone ? TransportError::kOther : result.transport_error;
  std::string outcome(model::ToString(error));
  std::string summary = result.error_message.empty() ? outcome : result.error_message;
  // Refused by the endpoint-safety rules: nothing was sent, and retrying would not change the answer.
  if (error == TransportError::kBlocked) {
    return Failure(FailureClass::kBlockedDestination, false, std::move(outcome), std::move(summary));
  }
  // A header or URL that would split the request: the stored work itself is
  // bad (poison), and sending it again would be refused again.
  if (error == TransportError::kInvalidRequest) {
    return Failure(FailureClass::kPoison, false, std::move(outcome), std::move(summary));
  }
  return Failure(FailureClass::kTransient, true, std::move(outcome), std::move(summary));
}

// delay = (schedule[min(attempt-1, size-1)] or base * factor^(attempt-1))
//         * (1 + jitter * (2 * unit_random - 1)), clamped to [0, cap], rounded
// to the nearest millisecond. Computed in double; any value beyond 1e15 ms
// (~31,000 years, far above any cap) is pinned there first so that huge
// attempt numbers, infinities and NaN never reach the integer conversion.
model::Millis BackoffDelay(const model::Backoff& backoff, int attempt, double unit_random) {
  constexpr double kHuge = 1e15;
  const int step = std::max(attempt, 1) - 1;  // attempt 1 -> step 0

  double delay = 0;
  if (!backoff.schedule.empty()) {
    const std::size_t index = std::min(static_cast<std::size_t>(step), backoff.schedule.size() - 1);
    delay = static_cast<double>(backoff.schedule[index].count());
  } else {
    const double factor = std::isfinite(backoff.factor) ? std::max(backoff.factor, 0.0) : 1.0;
    delay = static_cast<double>(backoff.base.count()) * std::pow(factor, static_cast<double>(step));
  }
  if (!(delay <= kHuge)) delay = kHuge;  // also catches NaN
  if (!(delay >= 0)) delay = 0;

  // Cap before jitter too, so delays that reached the cap still spread over
  // [cap * (1 - jitter), cap] instead of all landing on the same instant.
  const double cap = static_cast<double>(std::max<model::Millis::rep>(backoff.cap.count(), 0));
  delay = std::min(delay, cap);

  double unit = unit_random;
  if (!(unit >= 0)) unit = 0;  // NaN or negative
  if (unit > 1) unit = 1;
  double jitter = backoff.jitter;
  if (!(jitter >= 0)) jitter = 0;
  if (jitter > 1) jitter = 1;
  delay *= 1.0 + jitter * (2.0 * unit - 1.0);  // multiplier in [0, 2]

  delay = std::clamp(delay, 0.0, std::min(cap, kHuge));
  return model::Millis{static_cast<model::Millis::rep>(std::llround(delay))};
}

NextStep Decide(const Verdict& verdict, int attempt, const model::Policy& policy, double unit_random) {
  NextStep next;
  if (verdict.success) {
    next.status = model::DeliveryStatus::kDelivered;
  } else if (!verdict.retryable) {
    next.status = model::DeliveryStatus::kFailed;
  } else if (attempt < policy.max_attempts) {
    next.status = model::DeliveryStatus::kRetryScheduled;
    next.delay = BackoffDelay(policy.backoff, attempt, unit_random);
  } else {
    next.status = model::DeliveryStatus::kDeadLettered;
  }
  return next;
}

}  // namespace pgcourier::retry

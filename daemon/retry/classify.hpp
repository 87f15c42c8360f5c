// Classification of one attempt's HTTP result and the decision of what comes
// next. Pure functions: no I/O, no clock, randomness passed in. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/delivery.hpp"
#include "model/policy.hpp"

namespace pgcourier::retry {

struct Verdict {
  bool success = false;              // 2xx
  model::FailureClass failure_class = model::FailureClass::kNone;
  bool retryable = false;
  std::string outcome;               // "delivered", "http_error", "timeout", "connection_error",
                                     // "dns_error", "tls_error", "protocol_error", "redirect", ...
  std::string summary;               // human text, unredacted (caller redacts)
};

// 2xx -> delivered. 3xx -> redirect, validation, not retried (redirects are not followed).
// 429 -> rate_limited. 401/403 -> auth. Statuses in policy.retryable_statuses -> transient,
// retryable. Other 4xx -> validation. Transport errors (timeout, connect, DNS, TLS,
// protocol, other) -> transient, retryable. kAborted -> transient, retryable.
Verdict Classify(const model::HttpResult& result, const model::Policy& policy);

// Delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed.
// unit_random is a uniform sample in [0, 1) used for jitter.
model::Millis BackoffDelay(const model::Backoff& backoff, int attempt, double unit_random);

struct NextStep {
  model::DeliveryStatus status = model::DeliveryStatus::kFailed;
  model::Millis delay{0};  // meaningful for kRetryScheduled
};

// delivered on success; retry_scheduled with BackoffDelay while retryable and
// attempt < max_attempts; dead_lettered when retryable but attempts are used up;
// failed when not retryable.
NextStep Decide(const Verdict& verdict, int attempt, const model::Policy& policy, double unit_random);

}  // namespace pgcourier::retry

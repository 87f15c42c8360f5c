// The delivery lane's decisions, as pure functions of their inputs (the
// delivery, its policy, the HTTP result, a random sample, the time): what a
// claimed delivery becomes before it is sent (admission), after its attempt
// (completion), and after its daemon died holding it (rescue). No I/O, no
// clock of their own; thread-safe. Unit-tested in tests/unit/deliveries_decide_test.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/delivery.hpp"
#include "model/policy.hpp"
#include "retry/classify.hpp"
#include "store/types.hpp"

namespace pgcourier::lanes::deliveries {

// What to do with a claimed delivery before its limits are looked at.
struct Admission {
  enum class Action {
    kSend,     // go on: limits, signing, request
    kFail,     // record a failed attempt without a request (outcome, failure_class, reason)
    kHold,     // back to the database for kHoldDelay, "held: " + reason in last_error
    kRelease,  // back to the database (delay_ms; negative: until the subscription is resumed)
  };
  Action action = Action::kSend;
  std::string outcome;  // kFail: subscription_inactive, tenant_mismatch, invalid_url
  model::FailureClass failure_class = model::FailureClass::kNone;
  std::string reason;
  std::int64_t delay_ms = 0;
};

// Released until the subscription is resumed (next_attempt_at = infinity).
inline constexpr std::int64_t kUntilResumed = -1;

// In order: an unknown policy holds it (nothing is lost by a configuration
// mistake); an inactive subscription, a tenant mismatch or an unusable URL
// (`url_problem`) fail it unsent; a paused subscription releases it until
// resumed. `policies_file` names the file in the hold reason.
Admission Admit(const model::ClaimedDelivery& delivery, const model::Policy* policy,
                const std::optional<std::string>& url_problem, const std::string& policies_file);

// The outcome of a delivery that ends without a request.
model::DeliveryOutcome Unsent(const model::ClaimedDelivery& delivery, model::DeliveryStatus status,
                              std::string outcome, model::FailureClass failure_class, const std::string& summary,
                              std::int64_t now_unix_us);

// The webhook body is over the policy's max_body_bytes: failed as poison, unsent.
std::optional<model::DeliveryOutcome> BodyTooLarge(const model::ClaimedDelivery& delivery, std::size_t body_bytes,
                                                   const model::Policy& policy, std::int64_t now_unix_us);

// What an attempt's result makes of its delivery.
struct Completed {
  model::DeliveryOutcome outcome;
  retry::Verdict verdict;
  // 410 Gone: the subscription is disabled at once, with this reason.
  std::optional<std::string> disable_reason;
};

// Classifies the result, decides retry / dead-letter / fail / delivered
// within the attempt budget (unit_random for the backoff's jitter), honours
// Retry-After on rate-limited answers up to the backoff cap.
Completed Complete(const model::ClaimedDelivery& delivery, const model::Policy& policy,
                   const model::HttpResult& result, double unit_random, std::int64_t now_unix_ms);

// What a delivery whose lease expired becomes: an attempt 'lease_expired'
// (transient) recorded for the dead owner, retried at once within the
// policy's budget (the request may never have been sent) or dead-lettered
// when the budget is used; an unknown policy reschedules it after
// kHoldDelay. The outcome is fenced: it applies only while the lease is
// still the dead owner's and still expired.
model::DeliveryOutcome Rescued(const store::ExpiredLease& lease, const model::Policy* policy, double unit_random,
                               std::int64_t now_unix_us);

// scheme://host:port of a URL (userinfo left out): requests to one endpoint share its circuit.
std::string EndpointOf(const std::string& url);

}  // namespace pgcourier::lanes::deliveries

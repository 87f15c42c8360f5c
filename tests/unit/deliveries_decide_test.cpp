// The delivery lane's pure decisions (lanes/deliveries/decide.hpp): admission
// before a request, completion after it, rescue after a dead owner.
#include <doctest/doctest.h>

#include "lanes/deliveries/decide.hpp"
#include "lanes/hold_log.hpp"

using namespace pgcourier;
using lanes::deliveries::Admission;
using model::DeliveryStatus;
using model::FailureClass;

namespace {

model::ClaimedDelivery Sample() {
  model::ClaimedDelivery d;
  d.id = "dlv_1";
  d.tenant_id = "acme";
  d.event_id = "evt_1";
  d.subscription_id = "sub_1";
  d.policy_name = "default";
  d.url = "https://hooks.example.com/in";
  d.previous_attempts = 0;
  return d;
}

model::Policy Policy() {
  model::Policy p;
  p.name = "default";
  p.max_attempts = 3;
  p.backoff.base = model::Millis(1000);
  p.backoff.factor = 2;
  p.backoff.cap = model::Millis(60000);
  p.backoff.jitter = 0;
  return p;
}

model::HttpResult Status(int code) {
  model::HttpResult r;
  r.status_code = code;
  r.started_us = 1'800'000'000'000'000;
  r.duration_ms = 12.5;
  return r;
}

constexpr std::int64_t kNowMs = 1'800'000'000'000;

}  // namespace

TEST_CASE("admission: an unknown policy holds, naming the policy and the file") {
  const auto a = lanes::deliveries::Admit(Sample(), nullptr, std::nullopt, "/etc/pgcourier/policies.yaml");
  CHECK(a.action == Admission::Action::kHold);
  CHECK(a.reason == "policy 'default' of subscription sub_1 is not defined in /etc/pgcourier/policies.yaml");
}

TEST_CASE("admission: inactive subscription, tenant mismatch and a bad URL fail unsent, in that order") {
  const auto policy = Policy();
  auto d = Sample();
  d.subscription_active = false;
  d.tenant_consistent = false;
  auto a = lanes::deliveries::Admit(d, &policy, std::string("not a URL"), "p.yaml");
  CHECK(a.action == Admission::Action::kFail);
  CHECK(a.outcome == "subscription_inactive");
  CHECK(a.failure_class == FailureClass::kValidation);
  d.subscription_active = true;
  a = lanes::deliveries::Admit(d, &policy, std::string("not a URL"), "p.yaml");
  CHECK(a.outcome == "tenant_mismatch");
  CHECK(a.failure_class == FailureClass::kPoison);
  d.tenant_consistent = true;
  a = lanes::deliveries::Admit(d, &policy, std::string("the URL has no host"), "p.yaml");
  CHECK(a.outcome == "invalid_url");
  CHECK(a.reason == "the URL has no host");
}

TEST_CASE("admission: a paused subscription releases until resumed; a good delivery goes on") {
  const auto policy = Policy();
  auto d = Sample();
  d.subscription_paused = true;
  auto a = lanes::deliveries::Admit(d, &policy, std::nullopt, "p.yaml");
  CHECK(a.action == Admission::Action::kRelease);
  CHECK(a.delay_ms == lanes::deliveries::kUntilResumed);
  CHECK(a.reason.rfind(lanes::kHeldPrefix, 0) == 0);
  d.subscription_paused = false;
  CHECK(lanes::deliveries::Admit(d, &policy, std::nullopt, "p.yaml").action == Admission::Action::kSend);
}

TEST_CASE("a body over max_body_bytes fails as poison, unsent") {
  auto policy = Policy();
  policy.max_body_bytes = 100;
  CHECK_FALSE(lanes::deliveries::BodyTooLarge(Sample(), 100, policy, 1).has_value());
  const auto o = lanes::deliveries::BodyTooLarge(Sample(), 101, policy, 1);
  REQUIRE(o.has_value());
  CHECK(o->outcome == "payload_too_large");
  CHECK(o->failure_class == FailureClass::kPoison);
  CHECK(o->next_status == DeliveryStatus::kFailed);
}

TEST_CASE("completion: 2xx delivers; 500 retries with backoff until the budget, then dead-letters") {
  const auto policy = Policy();
  auto d = Sample();
  auto c = lanes::deliveries::Complete(d, policy, Status(204), 0.5, kNowMs);
  CHECK(c.outcome.next_status == DeliveryStatus::kDelivered);
  CHECK(c.outcome.attempt == 1);
  CHECK(c.outcome.error_summary.empty());
  c = lanes::deliveries::Complete(d, policy, Status(500), 0.5, kNowMs);
  CHECK(c.outcome.next_status == DeliveryStatus::kRetryScheduled);
  CHECK(c.outcome.retry_delay_ms == 1000);
  d.previous_attempts = 1;
  CHECK(lanes::deliveries::Complete(d, policy, Status(500), 0.5, kNowMs).outcome.retry_delay_ms == 2000);
  d.previous_attempts = 2;  // the third attempt is the last of max_attempts 3
  CHECK(lanes::deliveries::Complete(d, policy, Status(500), 0.5, kNowMs).outcome.next_status ==
        DeliveryStatus::kDeadLettered);
  // A replay's fresh budget counts from attempt_budget_base.
  d.attempt_budget_base = 2;
  CHECK(lanes::deliveries::Complete(d, policy, Status(500), 0.5, kNowMs).outcome.next_status ==
        DeliveryStatus::kRetryScheduled);
}

TEST_CASE("completion: the response excerpt is bounded, valid UTF-8 and has URL credentials and queries redacted") {
  auto policy = Policy();
  policy.response_excerpt_bytes = 64;
  auto r = Status(500);
  r.body_excerpt = std::string("{\"retry\": \"https://admin:hunter2@api.example.com/v1?token=abc\"} \xff") +
                   std::string(100, 'x');
  const auto excerpt = lanes::deliveries::Complete(Sample(), policy, r, 0.5, kNowMs).outcome.response_excerpt;
  CHECK(excerpt.find("hunter2") == std::string::npos);
  CHECK(excerpt.find("token=abc") == std::string::npos);
  CHECK(excerpt.rfind("{\"retry\": \"https://***@api.example.com/v1?***\"} \xEF\xBF\xBD", 0) == 0);
  CHECK(excerpt.size() <= 64);
}

TEST_CASE("completion: 429 waits at least Retry-After, at most the backoff cap") {
  const auto policy = Policy();
  auto r = Status(429);
  r.retry_after = "30";
  auto c = lanes::deliveries::Complete(Sample(), policy, r, 0.5, kNowMs);
  CHECK(c.verdict.failure_class == FailureClass::kRateLimited);
  CHECK(c.outcome.retry_delay_ms == 30000);
  r.retry_after = "86400";
  CHECK(lanes::deliveries::Complete(Sample(), policy, r, 0.5, kNowMs).outcome.retry_delay_ms == 60000);
  r.retry_after = "soon";  // not a valid value: the policy's backoff
  CHECK(lanes::deliveries::Complete(Sample(), policy, r, 0.5, kNowMs).outcome.retry_delay_ms == 1000);
}

TEST_CASE("completion: 410 fails and disables the subscription; 404 fails without retry") {
  const auto policy = Policy();
  auto c = lanes::deliveries::Complete(Sample(), policy, Status(410), 0.5, kNowMs);
  CHECK(c.outcome.next_status == DeliveryStatus::kFailed);
  REQUIRE(c.disable_reason.has_value());
  CHECK(c.disable_reason->find("410 Gone") != std::string::npos);
  c = lanes::deliveries::Complete(Sample(), policy, Status(404), 0.5, kNowMs);
  CHECK(c.outcome.next_status == DeliveryStatus::kFailed);
  CHECK_FALSE(c.disable_reason.has_value());
  CHECK(c.outcome.failure_class == FailureClass::kValidation);
}

TEST_CASE("rescue: an expired lease is retried at once for the dead owner, or dead-lettered when the budget is used") {
  const auto policy = Policy();
  store::ExpiredLease lease{"dlv_1", "host-123", "default", 0, 0, "sub_1"};
  auto o = lanes::deliveries::Rescued(lease, &policy, 0.5, 42);
  CHECK(o.expected_owner == "host-123");  // fenced by the dead owner's lease
  CHECK(o.rescue);                        // and by the lease still being expired
  CHECK(o.attempt == 1);
  CHECK(o.outcome == "lease_expired");
  CHECK(o.next_status == DeliveryStatus::kRetryScheduled);
  CHECK(o.retry_delay_ms == 0);
  CHECK(o.error_summary.find("host-123") != std::string::npos);
  lease.previous_attempts = 2;
  CHECK(lanes::deliveries::Rescued(lease, &policy, 0.5, 42).next_status == DeliveryStatus::kDeadLettered);
  // An unknown policy: rescheduled after the hold delay, never lost.
  o = lanes::deliveries::Rescued(lease, nullptr, 0.5, 42);
  CHECK(o.next_status == DeliveryStatus::kRetryScheduled);
  CHECK(o.retry_delay_ms == lanes::kHoldDelay.count());
}

TEST_CASE("an endpoint is scheme://host:port without userinfo, path or query") {
  CHECK(lanes::deliveries::EndpointOf("https://u:p@hooks.example.com:8443/in?x=1") == "https://hooks.example.com:8443");
  CHECK(lanes::deliveries::EndpointOf("http://127.0.0.1/a") == "http://127.0.0.1");
}

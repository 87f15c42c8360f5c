// The run lane's pure decisions (lanes/runs/decide.hpp) and its OAuth2 token
// cache (lanes/runs/tokens.hpp) with a manual clock.
#include <doctest/doctest.h>

#include "base/clock.hpp"
#include "lanes/runs/decide.hpp"
#include "lanes/runs/tokens.hpp"

using namespace pgcourier;
using namespace std::chrono_literals;
using model::FailureClass;
using model::NextAction;
using model::RunStatus;

namespace {

model::ClaimedRun Sample() {
  model::ClaimedRun r;
  r.id = "run_1";
  r.tenant_id = "acme";
  r.connection_id = "conn_1";
  r.operation = "sms.send";
  r.method = "POST";
  r.path = "/v1/messages";
  r.headers_json = "{}";
  r.connection_found = true;
  r.connection.id = "conn_1";
  r.connection.tenant_id = "acme";
  r.connection.status = "active";
  r.connection.auth_mode = "api_key";
  r.connection.credential_id = "cred_1";
  r.connection.credential_version = 3;
  return r;
}

model::Policy Policy() {
  model::Policy p;
  p.name = "default";
  p.max_attempts = 3;
  p.backoff.base = model::Millis(1000);
  p.backoff.factor = 2;
  p.backoff.cap = model::Millis(60000);
  p.backoff.jitter = 0;
  p.integration.max_rate_limited_waits = 2;
  return p;
}

model::HttpResult Status(int code, std::string body = "") {
  model::HttpResult r;
  r.status_code = code;
  r.body_excerpt = std::move(body);
  r.started_us = 1'800'000'000'000'000;
  return r;
}

constexpr std::int64_t kNowMs = 1'800'000'000'000;

}  // namespace

TEST_CASE("run admission: poison is dead-lettered, an unknown policy holds") {
  auto run = Sample();
  run.connection_found = false;
  const auto policy = Policy();
  auto a = lanes::runs::AdmitRun(run, &policy);
  CHECK(a.action == lanes::runs::RunAdmission::Action::kPoison);
  CHECK(a.error_code == "unknown_connection");
  a = lanes::runs::AdmitRun(Sample(), nullptr);
  CHECK(a.action == lanes::runs::RunAdmission::Action::kHold);
  CHECK(lanes::runs::AdmitRun(Sample(), &policy).action == lanes::runs::RunAdmission::Action::kSend);
  const auto o = lanes::runs::Poisoned(run, "unknown_connection", "connection conn_1 does not exist", 7);
  CHECK(o.next_status == RunStatus::kDeadLettered);
  CHECK(o.next_action == NextAction::kEscalate);
}

TEST_CASE("run completion: 2xx completes with the external_ref at the pointer") {
  auto run = Sample();
  run.external_ref_pointer = "/data/sid";
  const auto done = lanes::runs::CompleteRun(run, Policy(), Status(201, R"({"data":{"sid":"SM123"}})"), 0.5, kNowMs);
  CHECK(done.outcome.next_status == RunStatus::kCompleted);
  CHECK(done.outcome.external_ref == "SM123");
  CHECK(done.outcome.credential_version == 3);
  CHECK_FALSE(done.degrade.has_value());
}

TEST_CASE("run completion: 503 retries within the budget, then dead-letters") {
  auto run = Sample();
  auto done = lanes::runs::CompleteRun(run, Policy(), Status(503), 0.5, kNowMs);
  CHECK(done.outcome.next_status == RunStatus::kPending);
  CHECK(done.outcome.retry_delay_ms == 1000);
  CHECK(done.outcome.next_action == NextAction::kRetry);
  CHECK(done.outcome.error_code == "http_503");
  run.previous_attempts = 2;
  done = lanes::runs::CompleteRun(run, Policy(), Status(503), 0.5, kNowMs);
  CHECK(done.outcome.next_status == RunStatus::kDeadLettered);
  CHECK(done.outcome.next_action == NextAction::kDeadLetter);
}

TEST_CASE("run completion: 429 answers do not count against max_attempts up to max_rate_limited_waits") {
  auto run = Sample();
  run.previous_attempts = 5;  // beyond max_attempts, but these were rate-limited waits
  run.rate_limited_attempts = 1;
  auto r = Status(429);
  r.retry_after = "20";
  auto done = lanes::runs::CompleteRun(run, Policy(), r, 0.5, kNowMs);
  CHECK(done.outcome.next_status == RunStatus::kPending);
  CHECK(done.outcome.retry_delay_ms == 20000);
  run.rate_limited_attempts = 2;  // the free waits are used up: the budget decides
  done = lanes::runs::CompleteRun(run, Policy(), r, 0.5, kNowMs);
  CHECK(done.outcome.next_status == RunStatus::kDeadLettered);
}

TEST_CASE("run completion: a refused OAuth2 token is fetched again once; a refused static credential degrades") {
  auto run = Sample();
  run.connection.auth_mode = "oauth2_client_credentials";
  auto done = lanes::runs::CompleteRun(run, Policy(), Status(401), 0.5, kNowMs);
  CHECK(done.drop_token);
  CHECK(done.outcome.error_code == "auth_refresh");
  CHECK(done.outcome.next_status == RunStatus::kPending);
  CHECK(done.outcome.retry_delay_ms == 0);
  CHECK_FALSE(done.degrade.has_value());
  run.last_error_code = "auth_refresh";  // refused again with the fresh token
  done = lanes::runs::CompleteRun(run, Policy(), Status(401), 0.5, kNowMs);
  REQUIRE(done.degrade.has_value());
  CHECK(done.degrade->credential_version == 3);
  CHECK(done.outcome.next_action == NextAction::kEscalate);
  done = lanes::runs::CompleteRun(Sample(), Policy(), Status(403), 0.5, kNowMs);
  REQUIRE(done.degrade.has_value());
  CHECK(done.degrade->connection_id == "conn_1");
  CHECK(done.outcome.next_status == RunStatus::kPending);
}

TEST_CASE("run completion: validation answers fail and escalate") {
  const auto done = lanes::runs::CompleteRun(Sample(), Policy(), Status(422), 0.5, kNowMs);
  CHECK(done.outcome.next_status == RunStatus::kFailed);
  CHECK(done.outcome.next_action == NextAction::kEscalate);
  CHECK(done.outcome.failure_class == FailureClass::kValidation);
}

TEST_CASE("a failed token request: refused client degrades, blocked destination fails, else transient retry") {
  auto run = Sample();
  run.connection.auth_mode = "oauth2_client_credentials";
  auto done = lanes::runs::TokenFailed(run, Policy(), Status(401), 0.5, 7);
  CHECK(done.outcome.error_code == "token_refused");
  CHECK(done.degrade.has_value());
  CHECK(done.outcome.next_status == RunStatus::kPending);
  model::HttpResult blocked;
  blocked.transport_error = model::TransportError::kBlocked;
  done = lanes::runs::TokenFailed(run, Policy(), blocked, 0.5, 7);
  CHECK(done.outcome.next_status == RunStatus::kFailed);
  CHECK(done.outcome.failure_class == FailureClass::kBlockedDestination);
  done = lanes::runs::TokenFailed(run, Policy(), Status(502), 0.5, 7);
  CHECK(done.outcome.failure_class == FailureClass::kTransient);
  CHECK(done.outcome.next_status == RunStatus::kPending);
  CHECK(done.outcome.retry_delay_ms == 1000);
}

TEST_CASE("run rescue: at once for the dead owner, or dead-lettered once the budget (minus free waits) is used") {
  const auto policy = Policy();
  store::ExpiredRunLease lease{"run_1", "host-9", "default", 0, 0, 0};
  auto o = lanes::runs::RescuedRun(lease, &policy, 5);
  CHECK(o.expected_owner == "host-9");
  CHECK(o.rescue);
  CHECK(o.next_status == RunStatus::kPending);
  CHECK(o.retry_delay_ms == 0);
  lease.previous_attempts = 2;
  CHECK(lanes::runs::RescuedRun(lease, &policy, 5).next_status == RunStatus::kDeadLettered);
  lease.rate_limited_attempts = 1;  // one of the two attempts was a free rate-limited wait
  CHECK(lanes::runs::RescuedRun(lease, &policy, 5).next_status == RunStatus::kPending);
}

TEST_CASE("a probe passes on its expected status; no answer or a 5xx is inconclusive; a refused token is dropped") {
  auto c = Sample().connection;
  c.health_check_path = "/health";
  auto v = lanes::runs::JudgeProbe(c, Status(200));
  CHECK(v.ok);
  c.health_check_expected_status = 204;
  v = lanes::runs::JudgeProbe(c, Status(200));
  CHECK_FALSE(v.ok);
  CHECK_FALSE(v.transient);
  CHECK(v.error == "health check /health answered HTTP 200");
  v = lanes::runs::JudgeProbe(c, Status(503));
  CHECK(v.transient);
  model::HttpResult timeout;
  timeout.transport_error = model::TransportError::kTimeout;
  timeout.error_message = "timed out";
  v = lanes::runs::JudgeProbe(c, timeout);
  CHECK(v.transient);
  CHECK_FALSE(v.status_code.has_value());
  c.auth_mode = "oauth2_client_credentials";
  CHECK(lanes::runs::JudgeProbe(c, Status(401)).drop_token);
}

TEST_CASE("a token is fresh until its refresh margin, never past half its life; waiters share one request") {
  base::ManualClock clock;
  lanes::runs::TokenCache cache(clock);
  const std::string key = "cred_1#3#https://auth/token#client";
  CHECK(cache.Fresh(key, 60s) == nullptr);
  int calls = 0;
  std::string seen;
  auto then = [&](const std::string* token, const model::HttpResult* failure) {
    ++calls;
    CHECK(failure == nullptr);
    seen = *token;
  };
  CHECK(cache.Wait(key, then));        // the first waiter sends the request
  CHECK_FALSE(cache.Wait(key, then));  // the second waits for it
  cache.Resolved(key, "tok-1", 3600);
  CHECK(calls == 2);
  CHECK(seen == "tok-1");
  REQUIRE(cache.Fresh(key, 60s) != nullptr);
  clock.Advance(std::chrono::seconds(3600 - 61));
  CHECK(cache.Fresh(key, 60s) != nullptr);
  clock.Advance(2s);  // within the margin: renewed before it expires
  CHECK(cache.Fresh(key, 60s) == nullptr);
  // A 100 s token with a 60 s margin is renewed half-way, not after 40 s.
  cache.Resolved(key, "tok-2", 100);
  clock.Advance(45s);
  CHECK(cache.Fresh(key, 60s) != nullptr);
  clock.Advance(6s);
  CHECK(cache.Fresh(key, 60s) == nullptr);
  // Lifetimes are capped at a day whatever the server says.
  cache.Resolved(key, "tok-3", 10'000'000);
  clock.Advance(std::chrono::hours(24));
  CHECK(cache.Fresh(key, 60s) == nullptr);
  cache.Drop(key);
  CHECK(cache.Fresh(key, 0s) == nullptr);
}

TEST_CASE("a failed token request reaches every waiter with the failure") {
  base::ManualClock clock;
  lanes::runs::TokenCache cache(clock);
  int failures = 0;
  auto then = [&](const std::string* token, const model::HttpResult* failure) {
    CHECK(token == nullptr);
    REQUIRE(failure != nullptr);
    CHECK(failure->status_code == 401);
    ++failures;
  };
  cache.Wait("k", then);
  cache.Wait("k", then);
  cache.Failed("k", Status(401));
  CHECK(failures == 2);
  CHECK(cache.Wait("k", then));  // the next one sends a new request
}

// The run lane's decisions, as pure functions of their inputs (the run, its
// policy, the HTTP result, a random sample, the time): what a claimed run
// becomes before its request (admission), after its attempt or its token
// request (completion), after its daemon died holding it (rescue), and what
// a health probe's answer says. No I/O; thread-safe. Unit-tested in
// tests/unit/runs_decide_test.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/delivery.hpp"
#include "model/policy.hpp"
#include "model/run.hpp"
#include "retry/classify.hpp"
#include "store/types.hpp"

namespace pgcourier::lanes::runs {

// A connection to mark degraded after its credential was refused.
struct Degrade {
  std::string connection_id;
  std::string reason;
  int credential_version = 0;  // the version that was refused
};

struct RunAdmission {
  enum class Action { kSend, kPoison, kHold };
  Action action = Action::kSend;
  std::string error_code;  // kPoison
  std::string reason;      // kPoison, kHold
};

// A run that can never execute is poison (FindPoison, request.hpp); a
// connection naming an unknown policy holds it.
RunAdmission AdmitRun(const model::ClaimedRun& run, const model::Policy* policy);

// The outcome fields every attempt of `run` shares.
model::RunOutcome BaseOutcome(const model::ClaimedRun& run, std::int64_t now_unix_us);

// Poison: dead-lettered at once with its envelope kept, escalated.
model::RunOutcome Poisoned(const model::ClaimedRun& run, const std::string& error_code, const std::string& reason,
                           std::int64_t now_unix_us);

struct RunCompleted {
  model::RunOutcome outcome;
  std::optional<Degrade> degrade;
  bool drop_token = false;  // an OAuth2 token was refused: fetch a fresh one next time
};

// After an attempt's result: completed (with external_ref), retried within
// the budget (rate-limited answers do not count up to
// integration.max_rate_limited_waits, and honour Retry-After up to the
// backoff cap), an OAuth2 401/403 retried at once with a fresh token (once),
// a static credential refused -> pending + the connection degraded, other
// failures failed and escalated.
RunCompleted CompleteRun(const model::ClaimedRun& run, const model::Policy& policy, const model::HttpResult& result,
                         double unit_random, std::int64_t now_unix_ms);

// After the token request for `run` failed: a refused client (400/401/403)
// degrades the connection and the run waits; a refused destination fails it;
// anything else is a transient failure within the budget.
RunCompleted TokenFailed(const model::ClaimedRun& run, const model::Policy& policy, const model::HttpResult& result,
                         double unit_random, std::int64_t now_unix_us);

// An expired run lease: an attempt 'lease_expired' for the dead owner, run
// again at once, or dead-lettered when the budget is used.
model::RunOutcome RescuedRun(const store::ExpiredRunLease& lease, const model::Policy* policy,
                             std::int64_t now_unix_us);

// What a health check's answer says.
struct ProbeVerdict {
  bool ok = false;
  // The check could not say yes or no (timeout, 5xx, 408, 429, no answer): a
  // rotation is verified again later instead of rejected.
  bool transient = false;
  std::optional<int> status_code;
  std::string error;
  bool drop_token = false;
};
ProbeVerdict JudgeProbe(const model::Connection& connection, const model::HttpResult& result);

}  // namespace pgcourier::lanes::runs

// Tests for config/: durations, the policies file and the settings file.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "config/duration.hpp"
#include "config/policies.hpp"
#include "config/settings.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::config::ConfigError;
using pgcourier::config::FormatDuration;
using pgcourier::config::LoadPoliciesFile;
using pgcourier::config::LoadSettingsFile;
using pgcourier::config::ParseDuration;
using pgcourier::config::ParsePolicies;
using pgcourier::config::ParseSettings;
using pgcourier::config::PolicySet;
using pgcourier::config::Settings;
using pgcourier::config::ValidateSettings;
using pgcourier::model::Millis;
using pgcourier::model::StatusRange;

// The problems of the ConfigError `call` throws (empty when it throws none).
template <typename Call>
std::vector<std::string> ProblemsOf(Call call) {
  try {
    call();
  } catch (const ConfigError& error) {
    return error.problems();
  }
  return {};
}

// The problems ParsePolicies reports for `yaml` (empty when it parses).
std::vector<std::string> PolicyProblems(const std::string& yaml) {
  return ProblemsOf([&] { ParsePolicies(yaml, "p.yaml"); });
}

std::vector<std::string> SettingsProblems(const std::string& yaml) {
  return ProblemsOf([&] { ParseSettings(yaml, "s.yaml"); });
}

std::vector<std::string> ValidationProblems(const Settings& settings) {
  return ProblemsOf([&] { ValidateSettings(settings, "settings"); });
}

// Every setting of `policy` (all but the name) is that of a default model::Policy.
void CheckHasDefaults(const pgcourier::model::Policy& policy) {
  const pgcourier::model::Policy defaults;
  CHECK(policy.max_attempts == defaults.max_attempts);
  CHECK(policy.backoff.base == defaults.backoff.base);
  CHECK(policy.backoff.factor == defaults.backoff.factor);
  CHECK(policy.backoff.cap == defaults.backoff.cap);
  CHECK(policy.backoff.jitter == defaults.backoff.jitter);
  CHECK(policy.backoff.schedule == defaults.backoff.schedule);
  CHECK(policy.connect_timeout == defaults.connect_timeout);
  CHECK(policy.request_timeout == defaults.request_timeout);
  CHECK(policy.retryable_statuses == defaults.retryable_statuses);
  CHECK(policy.response_excerpt_bytes == defaults.response_excerpt_bytes);
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

// A policies file with a default policy plus `body` under it.
std::string DefaultPolicy(const std::string& body) { return "policies:\n  default:\n" + body; }

}  // namespace

// ---------------------------------------------------------------------------
// Durations

TEST_CASE("ParseDuration accepts every unit and combinations from largest to smallest") {
  CHECK(ParseDuration("0") == 0ms);
  CHECK(ParseDuration("0s") == 0ms);
  CHECK(ParseDuration("0ms") == 0ms);
  CHECK(ParseDuration("250ms") == 250ms);
  CHECK(ParseDuration("5s") == 5s);
  CHECK(ParseDuration("90s") == 90s);
  CHECK(ParseDuration("2m") == 2min);
  CHECK(ParseDuration("1h") == 1h);
  CHECK(ParseDuration("1d") == 24h);
  CHECK(ParseDuration("1h30m") == 90min);
  CHECK(ParseDuration("1d2h3m4s5ms") == 24h + 2h + 3min + 4s + 5ms);
  CHECK(ParseDuration("2m500ms") == 120500ms);
}

TEST_CASE("ParseDuration rejects bare numbers, signs, fractions, spaces and unknown units") {
  for (const char* text : {"", "5", "-5s", "+5s", "1.5s", ".5s", "5 s", " 5s", "5s ", "5S", "5sec", "5us", "5ns",
                           "s", "ms", "1h-30m", "5s5", "1w", "0x10s", "１s"}) {
    CAPTURE(text);
    CHECK_FALSE(ParseDuration(text).has_value());
  }
}

TEST_CASE("ParseDuration rejects repeated or out-of-order units") {
  CHECK_FALSE(ParseDuration("30m1h").has_value());
  CHECK_FALSE(ParseDuration("1m1m").has_value());
  CHECK_FALSE(ParseDuration("5ms1s").has_value());
  CHECK_FALSE(ParseDuration("1s1m").has_value());
}

TEST_CASE("ParseDuration rejects totals that overflow milliseconds") {
  CHECK(ParseDuration("106751991167d") == Millis{106751991167LL * 86400000LL});
  CHECK_FALSE(ParseDuration("106751991168d").has_value());
  CHECK(ParseDuration("106751991167d25000s").has_value());
  CHECK_FALSE(ParseDuration("106751991167d26000s").has_value());
  CHECK(ParseDuration("9223372036854775807ms") == Millis{9223372036854775807LL});
  CHECK_FALSE(ParseDuration("9223372036854775808ms").has_value());
  CHECK_FALSE(ParseDuration("99999999999999999999999999s").has_value());
}

TEST_CASE("FormatDuration writes the shortest exact form and round-trips") {
  CHECK(FormatDuration(0ms) == "0s");
  CHECK(FormatDuration(250ms) == "250ms");
  CHECK(FormatDuration(5s) == "5s");
  CHECK(FormatDuration(90min) == "1h30m");
  CHECK(FormatDuration(24h + 1h + 1min + 1s + 1ms) == "1d1h1m1s1ms");
  CHECK(FormatDuration(-1500ms) == "-1s500ms");
  CHECK_FALSE(FormatDuration(Millis::min()).empty());
  for (Millis value : {1ms, 999ms, 1000ms, 61000ms, 3600001ms, Millis::max()}) {
    CAPTURE(value.count());
    CHECK(ParseDuration(FormatDuration(value)) == value);
  }
}

// ---------------------------------------------------------------------------
// Policies: success

TEST_CASE("A complete policy is parsed into model::Policy") {
  const PolicySet set = ParsePolicies(R"(policies:
  default:
    max_attempts: 6
    backoff:
      base: 2s
      factor: 3
      cap: 10m
      jitter: 0.25
    timeouts:
      connect: 3s
      request: 20s
    retryable_statuses: [408, "425", 429, "5xx", "4XX", "500-504"]
    response_excerpt_bytes: 0
  slow-hooks_2:
    timeouts:
      request: 9m
)",
                                      "p.yaml");
  REQUIRE(set.all().size() == 2);
  const auto* policy = set.Find("default");
  REQUIRE(policy != nullptr);
  CHECK(policy->name == "default");
  CHECK(policy->max_attempts == 6);
  CHECK(policy->backoff.base == 2s);
  CHECK(policy->backoff.factor == 3.0);
  CHECK(policy->backoff.cap == 10min);
  CHECK(policy->backoff.jitter == 0.25);
  CHECK(policy->backoff.schedule.empty());
  CHECK(policy->connect_timeout == 3s);
  CHECK(policy->request_timeout == 20s);
  CHECK(policy->retryable_statuses == std::vector<StatusRange>{{408, 408}, {425, 425}, {429, 429}, {500, 599},
                                                               {400, 499}, {500, 504}});
  CHECK(policy->response_excerpt_bytes == 0);

  const auto* slow = set.Find("slow-hooks_2");
  REQUIRE(slow != nullptr);
  CHECK(slow->name == "slow-hooks_2");
  CHECK(slow->request_timeout == 9min);
  CHECK(slow->max_attempts == 8);  // default
  CHECK(set.Find("missing") == nullptr);
  CHECK(set.LongestRequestTimeout() == 9min);
}

TEST_CASE("An empty policy body takes every default of model::Policy") {
  for (const char* text : {"policies:\n  default:\n", "policies:\n  default: {}\n",
                           "policies:\n  default:\n    backoff:\n    timeouts: {}\n"}) {
    CAPTURE(text);
    const PolicySet set = ParsePolicies(text, "p.yaml");
    const auto* policy = set.Find("default");
    REQUIRE(policy != nullptr);
    CheckHasDefaults(*policy);
  }
}

TEST_CASE("An explicit backoff schedule replaces base and factor") {
  const PolicySet set = ParsePolicies(DefaultPolicy("    backoff:\n      schedule: [0s, 10s, 1m, 5m]\n      cap: 5m\n"),
                                      "p.yaml");
  CHECK(set.Find("default")->backoff.schedule == std::vector<Millis>{0s, 10s, 1min, 5min});
}

TEST_CASE("An empty retryable_statuses list means no status is retried") {
  const PolicySet set = ParsePolicies(DefaultPolicy("    retryable_statuses: []\n"), "p.yaml");
  CHECK(set.Find("default")->retryable_statuses.empty());
}

TEST_CASE("PolicySet built from a map names each policy after its key") {
  pgcourier::model::Policy policy;
  policy.name = "wrong";
  policy.request_timeout = 7s;
  const PolicySet set({{"a", policy}});
  CHECK(set.Find("a")->name == "a");
  CHECK(set.LongestRequestTimeout() == 7s);
  CHECK(PolicySet().LongestRequestTimeout() == 0ms);
}

TEST_CASE("The shipped policy files load") {
#ifdef PGCOURIER_SOURCE_DIR
  const std::string root = PGCOURIER_SOURCE_DIR;
  SUBCASE("policies/default.yaml") {
    const PolicySet set = LoadPoliciesFile(root + "/policies/default.yaml");
    const pgcourier::model::Policy defaults;
    const auto* policy = set.Find("default");
    REQUIRE(policy != nullptr);
    CheckHasDefaults(*policy);
    REQUIRE(set.Find("critical") != nullptr);
    CHECK(set.Find("critical")->max_attempts > defaults.max_attempts);
  }
  SUBCASE("policies/local.yaml") {
    const PolicySet set = LoadPoliciesFile(root + "/policies/local.yaml");
    const auto* policy = set.Find("default");
    REQUIRE(policy != nullptr);
    CHECK(policy->max_attempts == 3);
    CHECK(policy->backoff.base == 200ms);
    CHECK(policy->backoff.factor == 2.0);
    CHECK(policy->backoff.cap == 2s);
    CHECK(policy->backoff.jitter == 0.1);
    CHECK(policy->connect_timeout == 1s);
    CHECK(policy->request_timeout == 2s);
    REQUIRE(set.Find("patient") != nullptr);
    CHECK(set.Find("patient")->max_attempts == 5);
    CHECK(set.Find("patient")->backoff.base == 100ms);
    REQUIRE(set.Find("impatient") != nullptr);
    CHECK(set.Find("impatient")->max_attempts == 1);
    CHECK(set.LongestRequestTimeout() == 2s);
  }
#else
  MESSAGE("PGCOURIER_SOURCE_DIR not defined; shipped policy files not checked");
#endif
}

// ---------------------------------------------------------------------------
// Policies: errors

TEST_CASE("A wrong type names the file, line, YAML path, expectation and value") {
  const auto problems = PolicyProblems(DefaultPolicy("    max_attempts: \"many\"\n"));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == "p.yaml:3: policies.default.max_attempts: expected an integer from 1 to 100, got 'many'");
}

TEST_CASE("Out-of-range integers are reported with the allowed range") {
  CHECK(PolicyProblems(DefaultPolicy("    max_attempts: 0\n")) ==
        std::vector<std::string>{"p.yaml:3: policies.default.max_attempts: expected an integer from 1 to 100, got '0'"});
  CHECK(PolicyProblems(DefaultPolicy("    max_attempts: 101\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    max_attempts: 99999999999999999999999\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    max_attempts: 2.5\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    response_excerpt_bytes: 65537\n")) ==
        std::vector<std::string>{
            "p.yaml:3: policies.default.response_excerpt_bytes: expected an integer from 0 to 65536, got '65537'"});
  CHECK(PolicyProblems(DefaultPolicy("    response_excerpt_bytes: -1\n")).size() == 1);
}

TEST_CASE("A quoted number is a string, not a number") {
  const auto problems = PolicyProblems(DefaultPolicy("    max_attempts: \"8\"\n"));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("policies.default.max_attempts: expected an integer from 1 to 100") != std::string::npos);
  CHECK(problems[0].find("remove the quotes") != std::string::npos);
}

TEST_CASE("A missing value, a list or a mapping where a scalar is expected is a type error") {
  CHECK(PolicyProblems(DefaultPolicy("    max_attempts:\n")) ==
        std::vector<std::string>{"p.yaml:3: policies.default.max_attempts: expected an integer from 1 to 100, got nothing"});
  CHECK(PolicyProblems(DefaultPolicy("    max_attempts: [1]\n")) ==
        std::vector<std::string>{"p.yaml:3: policies.default.max_attempts: expected an integer from 1 to 100, got a list"});
  CHECK(PolicyProblems(DefaultPolicy("    max_attempts: {a: 1}\n")) ==
        std::vector<std::string>{
            "p.yaml:3: policies.default.max_attempts: expected an integer from 1 to 100, got a mapping"});
  CHECK(PolicyProblems(DefaultPolicy("    backoff: 5s\n")) ==
        std::vector<std::string>{"p.yaml:3: policies.default.backoff: expected a mapping of backoff settings, got '5s'"});
  CHECK(PolicyProblems("policies:\n  default: 3\n") ==
        std::vector<std::string>{"p.yaml:2: policies.default: expected a mapping of policy settings, got '3'"});
}

TEST_CASE("Numbers outside their range or not numbers are reported for factor and jitter") {
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      factor: 0.5\n")) ==
        std::vector<std::string>{
            "p.yaml:4: policies.default.backoff.factor: expected a number from 1.0 to 10.0, got '0.5'"});
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      factor: 10.5\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      factor: nan\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      factor: .inf\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      factor: fast\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      jitter: 1.5\n")) ==
        std::vector<std::string>{"p.yaml:4: policies.default.backoff.jitter: expected a number from 0 to 1, got '1.5'"});
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      jitter: -0.1\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      factor: 1\n      jitter: 0\n")).empty());
}

TEST_CASE("Invalid durations are reported with the expected form and bounds") {
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      base: 5\n")) ==
        std::vector<std::string>{"p.yaml:4: policies.default.backoff.base: expected a duration greater than 0 and at "
                                 "most 30d (like 250ms, 5s, 2m or 1h), got '5'"});
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      base: 0s\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      cap: 31d\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    timeouts:\n      request: 11m\n")) ==
        std::vector<std::string>{"p.yaml:4: policies.default.timeouts.request: expected a duration greater than 0 and "
                                 "at most 10m (like 250ms, 5s, 2m or 1h), got '11m'"});
  CHECK(PolicyProblems(DefaultPolicy("    timeouts:\n      connect: soon\n")).size() == 1);
}

TEST_CASE("Cross-field constraints: cap >= base and connect <= request") {
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      base: 10s\n      cap: 5s\n")) ==
        std::vector<std::string>{"p.yaml:5: policies.default.backoff.cap: must be at least backoff.base (10s), got 5s"});
  // The default cap (1h) is compared with an explicit base as well.
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      base: 2h\n")).size() == 1);
  CHECK(PolicyProblems(DefaultPolicy("    timeouts:\n      connect: 10s\n      request: 5s\n")) ==
        std::vector<std::string>{
            "p.yaml:4: policies.default.timeouts.connect: must not exceed timeouts.request (5s), got 10s"});
  // The default request timeout (30s) applies when only connect is given.
  CHECK(PolicyProblems(DefaultPolicy("    timeouts:\n      connect: 1m\n")).size() == 1);
  // Equal values are fine.
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      base: 5s\n      cap: 5s\n    timeouts:\n      connect: 5s\n"
                                     "      request: 5s\n"))
            .empty());
}

TEST_CASE("Schedule problems: empty, mixed with base/factor, entries above cap, bad entries") {
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      schedule: []\n")) ==
        std::vector<std::string>{"p.yaml:4: policies.default.backoff.schedule: expected a non-empty list of durations "
                                 "(like [10s, 1m, 5m]), got an empty list"});
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      base: 1s\n      schedule: [1s]\n")) ==
        std::vector<std::string>{"p.yaml:5: policies.default.backoff.schedule: cannot be combined with backoff.base or "
                                 "backoff.factor (the schedule replaces them)"});
  CHECK(PolicyProblems(DefaultPolicy("    backoff:\n      cap: 1m\n      schedule: [10s, 2m]\n")) ==
        std::vector<std::string>{"p.yaml:5: policies.default.backoff.schedule[1]: 2m exceeds backoff.cap (1m)"});
  const auto bad = PolicyProblems(DefaultPolicy("    backoff:\n      schedule: [10s, later, 5]\n"));
  REQUIRE(bad.size() == 2);
  CHECK(bad[0].find("policies.default.backoff.schedule[1]: expected a duration") != std::string::npos);
  CHECK(bad[0].find("got 'later'") != std::string::npos);
  CHECK(bad[1].find("policies.default.backoff.schedule[2]:") != std::string::npos);
}

TEST_CASE("Invalid retryable status entries are reported with their index") {
  const auto problems =
      PolicyProblems(DefaultPolicy("    retryable_statuses: [429, 600, \"6xx\", \"504-500\", abc, 99, [500]]\n"));
  REQUIRE(problems.size() == 6);
  CHECK(problems[0] == "p.yaml:3: policies.default.retryable_statuses[1]: expected a status code from 100 to 599, "
                       "\"4xx\", \"5xx\" or a range like \"500-504\", got '600'");
  CHECK(problems[1].find("retryable_statuses[2]") != std::string::npos);
  CHECK(problems[2].find("retryable_statuses[3]") != std::string::npos);
  CHECK(problems[3].find("retryable_statuses[4]") != std::string::npos);
  CHECK(problems[4].find("retryable_statuses[5]") != std::string::npos);
  CHECK(problems[5].find("retryable_statuses[6]") != std::string::npos);
  CHECK(problems[5].find("got a list") != std::string::npos);
  CHECK(PolicyProblems(DefaultPolicy("    retryable_statuses: 503\n")).size() == 1);
}

TEST_CASE("Unknown keys are errors at every level and list the valid keys") {
  const auto problems = PolicyProblems(R"(policies:
  default:
    max_attempt: 3
    backoff:
      bass: 1s
    timeouts:
      read: 1s
extra: true
)");
  REQUIRE(problems.size() == 4);
  CHECK(problems[0] == "p.yaml:3: policies.default.max_attempt: unknown key (expected one of: max_attempts, backoff, "
                       "timeouts, retryable_statuses, response_excerpt_bytes, max_body_bytes, endpoint, limits, circuit_breaker, "
        "auto_pause, integration)");
  CHECK(problems[1] ==
        "p.yaml:5: policies.default.backoff.bass: unknown key (expected one of: base, factor, cap, jitter, schedule)");
  CHECK(problems[2] == "p.yaml:7: policies.default.timeouts.read: unknown key (expected one of: connect, request)");
  CHECK(problems[3] == "p.yaml:8: extra: unknown key (expected one of: policies)");
}

TEST_CASE("Duplicate keys are errors") {
  CHECK(PolicyProblems(DefaultPolicy("    max_attempts: 3\n    max_attempts: 4\n")) ==
        std::vector<std::string>{"p.yaml:4: policies.default.max_attempts: duplicate key"});
  CHECK(PolicyProblems("policies:\n  default: {}\n  default: {}\n") ==
        std::vector<std::string>{"p.yaml:3: policies.default: duplicate key"});
}

TEST_CASE("All problems of a file are reported together, one per line") {
  const std::string yaml = R"(policies:
  default:
    max_attempts: many
    backoff:
      factor: 20
      jitter: 2
  other:
    timeouts:
      request: 1h
    response_excerpt_bytes: lots
)";
  const auto problems = PolicyProblems(yaml);
  REQUIRE(problems.size() == 5);
  CHECK(problems[0].rfind("p.yaml:3: policies.default.max_attempts:", 0) == 0);
  CHECK(problems[1].rfind("p.yaml:5: policies.default.backoff.factor:", 0) == 0);
  CHECK(problems[2].rfind("p.yaml:6: policies.default.backoff.jitter:", 0) == 0);
  CHECK(problems[3].rfind("p.yaml:9: policies.other.timeouts.request:", 0) == 0);
  CHECK(problems[4].rfind("p.yaml:10: policies.other.response_excerpt_bytes:", 0) == 0);
  try {
    ParsePolicies(yaml, "p.yaml");
    FAIL("expected ConfigError");
  } catch (const ConfigError& error) {
    const std::string what = error.what();
    CHECK(std::count(what.begin(), what.end(), '\n') == 4);
    CHECK(what == Joined(problems).substr(0, what.size()));
  }
}

TEST_CASE("The file must define a policy named default") {
  CHECK(PolicyProblems("policies:\n  other: {}\n") ==
        std::vector<std::string>{
            "p.yaml:1: policies.default: missing; every policies file must define a policy named 'default'"});
}

TEST_CASE("The file must define at least one policy") {
  for (const char* text : {"", "# nothing\n", "policies:\n", "policies: {}\n"}) {
    CAPTURE(text);
    const auto problems = PolicyProblems(text);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].rfind("p.yaml", 0) == 0);
    CHECK(problems[0].find("policies") != std::string::npos);
    CHECK(problems[0].find("'default'") != std::string::npos);
  }
  CHECK(PolicyProblems("policies: [default]\n") ==
        std::vector<std::string>{"p.yaml:1: policies: expected a mapping from policy names to policies, got a list"});
  CHECK(PolicyProblems("- default\n") ==
        std::vector<std::string>{"p.yaml:1: (top level): expected a mapping with the key 'policies', got a list"});
}

TEST_CASE("Policy names must match [a-z0-9_-]{1,64}") {
  const std::string long_name(65, 'a');
  const auto problems =
      PolicyProblems("policies:\n  default: {}\n  Bad Name: {}\n  " + long_name + ": {}\n  \"a\\nb\": {}\n");
  REQUIRE(problems.size() == 3);
  CHECK(problems[0] == "p.yaml:3: policies: invalid policy name 'Bad Name' (expected 1 to 64 characters from a-z, "
                       "0-9, '_' and '-')");
  CHECK(problems[1].rfind("p.yaml:4: policies: invalid policy name", 0) == 0);
  CHECK(problems[2].find("'a\\x0ab'") != std::string::npos);  // control characters escaped: one line per problem
  CHECK(PolicyProblems("policies:\n  default: {}\n  " + std::string(64, 'a') + ": {}\n").empty());
}

TEST_CASE("A YAML syntax error names the file and line") {
  const auto problems = PolicyProblems("policies:\n  default:\n    max_attempts: [1, 2\n    backoff: {}\n");
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].rfind("p.yaml:", 0) == 0);
  CHECK(problems[0].find("invalid YAML") != std::string::npos);
  const auto indentation = PolicyProblems("policies:\n  default: {}\n bad: x\n");
  REQUIRE(indentation.size() == 1);
  CHECK(indentation[0].rfind("p.yaml:3: invalid YAML", 0) == 0);
}

TEST_CASE("Several YAML documents in one file are rejected") {
  const auto problems = PolicyProblems("policies:\n  default: {}\n---\npolicies:\n  default: {}\n");
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("single YAML document") != std::string::npos);
}

TEST_CASE("An unreadable policies file is a ConfigError naming the path") {
  try {
    LoadPoliciesFile("/nonexistent/pgcourier/policies.yaml");
    FAIL("expected ConfigError");
  } catch (const ConfigError& error) {
    REQUIRE(error.problems().size() == 1);
    CHECK(error.problems()[0].rfind("/nonexistent/pgcourier/policies.yaml: cannot read policies file:", 0) == 0);
  }
  CHECK_THROWS_AS(LoadPoliciesFile("/"), ConfigError);
}

// ---------------------------------------------------------------------------
// Settings

TEST_CASE("Settings are parsed from every key") {
  const Settings settings = ParseSettings(R"(database_url: "postgresql://courier@db/pgcourier"
worker_id: worker-1
concurrency: 64
max_claim_batch: 32
lease_duration: 45s
poll_interval: 500ms
rescue_interval: 10s
shutdown_grace: 1m
policies_file: /etc/pgcourier/p.yaml
master_key_file: /run/credentials/master-key
metrics_address: "[::1]:9000"
log_level: debug
user_agent: "pgcourier-test/1"
)",
                                          "s.yaml");
  CHECK(settings.database_url == "postgresql://courier@db/pgcourier");
  CHECK(settings.worker_id == "worker-1");
  CHECK(settings.concurrency == 64);
  CHECK(settings.max_claim_batch == 32);
  CHECK(settings.lease_duration == 45s);
  CHECK(settings.poll_interval == 500ms);
  CHECK(settings.rescue_interval == 10s);
  CHECK(settings.shutdown_grace == 1min);
  CHECK(settings.policies_file == "/etc/pgcourier/p.yaml");
  CHECK(settings.master_key_file == "/run/credentials/master-key");
  CHECK(settings.metrics_address == "[::1]:9000");
  CHECK(settings.log_level == "debug");
  CHECK(settings.user_agent == "pgcourier-test/1");
  CHECK_NOTHROW(ValidateSettings(settings, "s.yaml"));
}

TEST_CASE("An empty settings file gives the defaults; a key without value gives an empty string") {
  const Settings defaults;
  const Settings empty = ParseSettings("", "s.yaml");
  CHECK(empty.concurrency == defaults.concurrency);
  CHECK(empty.policies_file == defaults.policies_file);
  CHECK(empty.metrics_address == defaults.metrics_address);
  const Settings disabled = ParseSettings("metrics_address:\nlog_level: off\n", "s.yaml");
  CHECK(disabled.metrics_address.empty());
  CHECK(disabled.log_level == "off");
  CHECK_NOTHROW(ValidateSettings(defaults, "defaults"));
}

TEST_CASE("Settings errors name file, line, key, expectation and are collected together") {
  const auto problems = SettingsProblems(R"(concurrency: lots
lease_duration: 30
shutdown_grace: 2h
log_level: verbose
metrics_address: nowhere
user_agent: [a, b]
max_claim_batch: "16"
databse_url: x
)");
  REQUIRE(problems.size() == 8);
  CHECK(problems[0] == "s.yaml:1: concurrency: expected an integer from 1 to 100000, got 'lots'");
  CHECK(problems[1] ==
        "s.yaml:2: lease_duration: expected a duration from 100ms to 1h (like 250ms, 5s, 2m or 1h), got '30'");
  CHECK(problems[2] ==
        "s.yaml:3: shutdown_grace: expected a duration greater than 0 and at most 1h (like 250ms, 5s, 2m or 1h), got '2h'");
  CHECK(problems[3] ==
        "s.yaml:4: log_level: expected one of trace, debug, info, warn, error, critical, off, got 'verbose'");
  CHECK(problems[4].rfind("s.yaml:5: metrics_address: expected host:port", 0) == 0);
  CHECK(problems[5] == "s.yaml:6: user_agent: expected a string, got a list");
  CHECK(problems[6].rfind("s.yaml:7: max_claim_batch: expected an integer from 1 to 10000, got the quoted string", 0) == 0);
  CHECK(problems[7].rfind("s.yaml:8: databse_url: unknown key (expected one of: database_url, ", 0) == 0);
}

TEST_CASE("The unknown-key message of a settings file lists every key the parser takes") {
  const auto problems = SettingsProblems("databse_url: x\n");
  REQUIRE(problems.size() == 1);
  const std::string& message = problems[0];
  // Every key of the Settings tables, delivery_events and user_agent included (the hand-written list had left
  // delivery_events out).
  for (const char* key : {"database_url", "worker_id", "concurrency", "max_claim_batch", "max_claim_bytes", "max_in_flight_bytes", "lease_duration",
                          "poll_interval", "rescue_interval", "shutdown_grace", "policies_file", "master_key_file",
                          "metrics_address", "log_level", "log_format", "maintenance_interval", "retention_completed",
                          "retention_dead_lettered", "credential_expiry_warning", "delivery_events", "tenants",
                          "user_agent"}) {
    CAPTURE(key);
    const std::string listed = std::string(" ") + key;
    CHECK((message.find(listed + ",") != std::string::npos || message.find(listed + ")") != std::string::npos));
  }
  CHECK(message.rfind("s.yaml:1: databse_url: unknown key (expected one of: database_url, concurrency, ", 0) == 0);
}

TEST_CASE("Settings: duplicate keys, non-mapping documents and syntax errors") {
  CHECK(SettingsProblems("concurrency: 1\nconcurrency: 2\n") ==
        std::vector<std::string>{"s.yaml:2: concurrency: duplicate key"});
  CHECK(SettingsProblems("- a\n") ==
        std::vector<std::string>{"s.yaml:1: (top level): expected a mapping of settings, got a list"});
  const auto syntax = SettingsProblems("concurrency: [1\n");
  REQUIRE(syntax.size() == 1);
  CHECK(syntax[0].rfind("s.yaml:", 0) == 0);
  CHECK(syntax[0].find("invalid YAML") != std::string::npos);
  CHECK_THROWS_AS(LoadSettingsFile("/nonexistent/pgcourier.yaml"), ConfigError);
}

TEST_CASE("ValidateSettings reports every out-of-range value with the source") {
  Settings settings;
  settings.concurrency = 0;
  settings.max_claim_batch = 10001;
  settings.lease_duration = 99ms;
  settings.poll_interval = -1ms;
  settings.rescue_interval = 0ms;
  settings.shutdown_grace = 1h + 1ms;
  settings.log_level = "verbose";
  settings.metrics_address = "9464";
  settings.policies_file = "";
  settings.user_agent = "a\r\nX-Injected: 1";
  const auto problems = ValidationProblems(settings);
  const std::string all = Joined(problems);
  CAPTURE(all);
  CHECK(problems.size() == 10);
  CHECK(all.find("settings: concurrency: expected an integer from 1 to 100000, got 0\n") != std::string::npos);
  CHECK(all.find("settings: max_claim_batch: expected an integer from 1 to 10000, got 10001\n") != std::string::npos);
  CHECK(all.find("settings: lease_duration: expected a duration from 100ms to 1h") != std::string::npos);
  CHECK(all.find("settings: poll_interval: ") != std::string::npos);
  CHECK(all.find("settings: rescue_interval: ") != std::string::npos);
  CHECK(all.find("settings: shutdown_grace: expected a duration greater than 0 and at most 1h (like 250ms, 5s, 2m "
                 "or 1h), got 1h1ms\n") != std::string::npos);
  CHECK(all.find("settings: log_level: ") != std::string::npos);
  CHECK(all.find("settings: metrics_address: ") != std::string::npos);
  CHECK(all.find("settings: policies_file: must not be empty\n") != std::string::npos);
  CHECK(all.find("settings: user_agent: must not contain control characters") != std::string::npos);
}

TEST_CASE("Settings range boundaries are inclusive") {
  Settings settings;
  settings.concurrency = 100000;
  settings.max_claim_batch = 10000;
  settings.shutdown_grace = 1h;
  settings.lease_duration = 100ms;
  CHECK(ValidationProblems(settings).empty());
  settings.concurrency = 1;
  settings.max_claim_batch = 1;
  CHECK(ValidationProblems(settings).empty());
}

TEST_CASE("metrics_address accepts empty or host:port only") {
  for (const char* good : {"", "127.0.0.1:9464", "localhost:1", "localhost:0", "0.0.0.0:65535", "[::1]:9464",
                           "[::]:80", "metrics.internal-net_1:9100"}) {
    CAPTURE(good);
    Settings settings;
    settings.metrics_address = good;
    CHECK(ValidationProblems(settings).empty());
  }
  for (const char* bad : {"9464", ":9464", "localhost", "localhost:", "localhost:65536",
                          "localhost:http", "::1:9464", "[::1]9464", "[]:80", "[zz::1]:80", "host name:80",
                          "http://host:80", "host:80/metrics"}) {
    CAPTURE(bad);
    Settings settings;
    settings.metrics_address = bad;
    CHECK(ValidationProblems(settings).size() == 1);
  }
}

TEST_CASE("metrics_address port 0 means an ephemeral port; other ports stay 0..65535 digits") {
  // Tests that run several daemons side by side bind 127.0.0.1:0.
  const Settings parsed = ParseSettings("metrics_address: \"127.0.0.1:0\"\n", "s.yaml");
  CHECK(parsed.metrics_address == "127.0.0.1:0");
  CHECK_NOTHROW(ValidateSettings(parsed, "s.yaml"));
  for (const char* good : {"127.0.0.1:0", "[::1]:0", "localhost:00000", "127.0.0.1:65535"}) {
    CAPTURE(good);
    Settings settings;
    settings.metrics_address = good;
    CHECK(ValidationProblems(settings).empty());
  }
  for (const char* bad : {"127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:100000", "127.0.0.1:-1", "127.0.0.1:-0",
                          "[::1]:-1", "127.0.0.1:+0", "127.0.0.1:0x10", "127.0.0.1:abc", "127.0.0.1: 0",
                          "127.0.0.1:0 "}) {
    CAPTURE(bad);
    Settings settings;
    settings.metrics_address = bad;
    const auto problems = ValidationProblems(settings);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "settings: metrics_address: expected host:port (like 127.0.0.1:9464, localhost:9464 or "
                         "[::1]:9464) or an empty string to disable metrics, got '" +
                             std::string(bad) + "'");
  }
  CHECK(SettingsProblems("metrics_address: \"127.0.0.1:65536\"\n") ==
        std::vector<std::string>{"s.yaml:1: metrics_address: expected host:port (like 127.0.0.1:9464, localhost:9464 "
                                 "or [::1]:9464) or an empty string to disable metrics, got '127.0.0.1:65536'"});
}

TEST_CASE("log_level accepts exactly the documented levels") {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    Settings settings;
    settings.log_level = level;
    CHECK(ValidationProblems(settings).empty());
  }
  for (const char* level : {"INFO", "warning", "err", ""}) {
    Settings settings;
    settings.log_level = level;
    CHECK(ValidationProblems(settings).size() == 1);
  }
}

TEST_CASE("endpoint, limits, circuit breaker and auto-pause sections are parsed and validated") {
  const auto set = pgcourier::config::ParsePolicies(R"(policies:
  default:
    endpoint:
      require_https: false
      allow_cidrs: [127.0.0.0/8, "::1/128"]
      allow_hosts: [localhost, "*.svc.internal"]
    limits: {max_in_flight: 4, per_second: 2.5, burst: 5}
    circuit_breaker: {failures: 3, cooldown: 10s}
    auto_pause: {consecutive_failures: 20, failing_for: 1h}
)", "p.yaml");
  const auto* p = set.Find("default");
  REQUIRE(p != nullptr);
  CHECK_FALSE(p->endpoint.require_https);
  CHECK(p->endpoint.allow_cidrs == std::vector<std::string>{"127.0.0.0/8", "::1/128"});
  CHECK(p->endpoint.allow_hosts == std::vector<std::string>{"localhost", "*.svc.internal"});
  CHECK(p->limits.max_in_flight == 4);
  CHECK(p->limits.per_second == doctest::Approx(2.5));
  CHECK(p->limits.burst == 5);
  CHECK(p->circuit_breaker.failures == 3);
  CHECK(p->circuit_breaker.cooldown == std::chrono::seconds(10));
  CHECK(p->auto_pause.consecutive_failures == 20);
  CHECK(p->auto_pause.failing_for == std::chrono::hours(1));

  try {
    pgcourier::config::ParsePolicies(R"(policies:
  default:
    endpoint:
      require_https: "no"
      allow_cidrs: [10.0.0.1/8, banana]
      allow_hosts: ["bad host"]
)", "q.yaml");
    FAIL("expected a ConfigError");
  } catch (const pgcourier::config::ConfigError& e) {
    const std::string all = e.what();
    CHECK(all.find("q.yaml:4: policies.default.endpoint.require_https: expected true or false") != std::string::npos);
    CHECK(all.find("policies.default.endpoint.allow_cidrs[0]: expected an address block") != std::string::npos);
    CHECK(all.find("policies.default.endpoint.allow_cidrs[1]") != std::string::npos);
    CHECK(all.find("policies.default.endpoint.allow_hosts[0]: expected a host name") != std::string::npos);
  }
}

TEST_CASE("a NUL byte in a policies file is an error with its line, not a hang (found by fuzzing)") {
  const std::string text("policies:\n  default:\n \0   max_attempts: \"x\"\n", 42);
  try {
    pgcourier::config::ParsePolicies(text, "nul.yaml");
    FAIL("expected a ConfigError");
  } catch (const pgcourier::config::ConfigError& e) {
    CHECK(std::string(e.what()) == "nul.yaml:3: contains a NUL byte; a YAML file must be text");
  }
}

TEST_CASE("a document starting with a comma is an error, not a hang (found by fuzzing)") {
  for (const std::string& text : {std::string(","), std::string(",\n \"\"\n"), std::string("# c\n\n  , x\n"),
                                 std::string("policies:\n  default: {}\n---\n,\n")}) {
    CAPTURE(text);
    try {
      pgcourier::config::ParsePolicies(text, "c.yaml");
      FAIL("expected a ConfigError");
    } catch (const pgcourier::config::ConfigError& e) {
      CHECK(std::string(e.what()).find("a document cannot start with ','") != std::string::npos);
    }
  }
  // A comma later in a document is ordinary YAML.
  CHECK(pgcourier::config::ParsePolicies("policies:\n  default: {max_attempts: 3, response_excerpt_bytes: 10}\n", "ok.yaml")
            .Find("default")
            ->max_attempts == 3);
}

TEST_CASE("A retired setting (lease_margin) still loads, with a notice that names it and its line") {
  const Settings settings = ParseSettings("concurrency: 8\nlease_margin: 30s\n", "s.yaml");
  CHECK(settings.concurrency == 8);
  REQUIRE(settings.notices.size() == 1);
  CHECK(settings.notices[0].rfind("s.yaml:2: lease_margin is no longer used", 0) == 0);
  CHECK(settings.notices[0].find("lease_duration") != std::string::npos);
  CHECK(ParseSettings("concurrency: 8\n", "s.yaml").notices.empty());
}

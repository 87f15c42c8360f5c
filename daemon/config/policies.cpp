// Policies file format (one YAML document):
//
//   policies:
//     default:                     # required; names match [a-z0-9_-]{1,64}
//       max_attempts: 8            # total attempts incl. the first, 1..100
//       backoff:
//         base: 5s                 # duration, > 0, <= 30d
//         factor: 2.0              # 1.0..10.0
//         cap: 1h                  # >= base, <= 30d; no delay exceeds it (jitter included)
//         jitter: 0.2              # 0..1: each delay is multiplied by 1 +/- jitter
//         # schedule: [10s, 1m, 5m]  # optional explicit delays (non-empty list of
//                                    # durations >= 0, each <= cap, last one repeats);
//                                    # replaces base/factor, which must then be absent
//       timeouts:
//         connect: 5s              # > 0, <= request
//         request: 30s             # > 0, <= 10m; whole request, connect included
//       retryable_statuses: [408, 425, 429, "5xx"]  # ints 100..599, "4xx"/"5xx",
//                                                   # or ranges like "500-504"; [] = none
//       response_excerpt_bytes: 1024  # 0..65536
//       endpoint:                  # SSRF rules and controlled egress (README "Endpoint safety")
//         require_https: true
//         allow_cidrs: []          # address blocks allowed although not global
//         allow_hosts: []          # names whose addresses are allowed although not global
//         allow_only_hosts: [...]  # optional, non-empty: the only hosts that may be contacted
//         proxy: http://h:3128     # optional egress proxy; no credentials in the URL
//         proxy_credentials_file: PATH   # or proxy_credentials_env: NAME ("user:password"); needs proxy
//
// Every key inside a policy is optional (defaults are those of model::Policy);
// `default:` with no value is a policy with all defaults. Unknown keys, duplicate
// keys, wrong types (including quoted numbers where a number is expected) and
// out-of-range values are errors. All problems are collected and thrown
// together as one ConfigError, one line each: "FILE:LINE: yaml.path: message"
// (without ":LINE" when no position is known).
#include "config/policies.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <utility>

#include "base/file.hpp"
#include "config/duration.hpp"
#include "config/policy_endpoint.hpp"
#include "config/yaml_support.hpp"
#include "netguard/address_policy.hpp"
#include "netguard/egress.hpp"

namespace pgcourier::config {
namespace {

using detail::Describe;
using detail::Entries;
using detail::Entry;
using detail::IsMappingOrEmpty;
using detail::IsQuoted;
using detail::ParseEndpoint;
using detail::ParseInteger;
using detail::ParseSingleDocument;
using detail::Printable;
using detail::Quote;
using detail::ReadBool;
using detail::ReadConfigFile;
using detail::ReadDuration;
using detail::ReadDurationNode;
using detail::ReadInteger;
using detail::ReadNumber;
using detail::Reporter;
using detail::ReportUnknownKey;
using model::Millis;

constexpr Millis kMaxBackoffDuration{30LL * 24 * 3600 * 1000};  // 30d
constexpr Millis kMaxRequestTimeout{10 * 60 * 1000};            // 10m
constexpr std::size_t kMaxExcerptBytes = 65536;

std::string JoinLines(const std::vector<std::string>& lines) {
  if (lines.empty()) return "invalid configuration";
  std::string out;
  for (const std::string& line : lines) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

// "503", "5xx", "500-504".
std::optional<model::StatusRange> ParseStatusSpec(std::string_view text) {
  auto valid = [](long long status) { return status >= 100 && status <= 599; };
  if (text.size() == 3 && (text[1] == 'x' || text[1] == 'X') && (text[2] == 'x' || text[2] == 'X')) {
    if (text[0] == '4') return model::StatusRange{400, 499};
    if (text[0] == '5') return model::StatusRange{500, 599};
    return std::nullopt;
  }
  const std::size_t dash = text.find('-');
  if (dash == std::string_view::npos) {
    const std::optional<long long> status = ParseInteger(text);
    if (!status || !valid(*status)) return std::nullopt;
    return model::StatusRange{static_cast<int>(*status), static_cast<int>(*status)};
  }
  const std::optional<long long> first = ParseInteger(text.substr(0, dash));
  const std::optional<long long> last = ParseInteger(text.substr(dash + 1));
  if (!first || !last || !valid(*first) || !valid(*last) || *first > *last) return std::nullopt;
  return model::StatusRange{static_cast<int>(*first), static_cast<int>(*last)};
}

std::optional<std::vector<model::StatusRange>> ReadStatuses(const Entry& entry, Reporter& reporter) {
  if (!entry.value.IsSequence()) {
    reporter.Add(entry.Where(), entry.path,
                 R"(expected a list of status codes (like [429, "5xx", "500-504"]), got )" + Describe(entry.value));
    return std::nullopt;
  }
  std::vector<model::StatusRange> out;
  bool ok = true;
  std::size_t index = 0;
  for (const YAML::Node& item : entry.value) {
    const std::string path = entry.path + "[" + std::to_string(index++) + "]";
    std::optional<model::StatusRange> range;
    if (item.IsScalar()) range = ParseStatusSpec(item.Scalar());
    if (!range) {
      reporter.Add(
          item.Mark().is_null() ? entry.Where() : item.Mark(), path,
          R"(expected a status code from 100 to 599, "4xx", "5xx" or a range like "500-504", got )" + Describe(item));
      ok = false;
      continue;
    }
    out.push_back(*range);
  }
  if (!ok) return std::nullopt;
  return out;
}

bool IsValidPolicyName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

void ParseBackoff(const Entry& section, model::Backoff& backoff, Reporter& reporter) {
  if (!IsMappingOrEmpty(section, "backoff settings", reporter) || section.value.IsNull()) return;
  bool base_ok = true, cap_ok = true, schedule_ok = true;
  const Entry* base_entry = nullptr;
  const Entry* factor_entry = nullptr;
  const Entry* cap_entry = nullptr;
  const Entry* schedule_entry = nullptr;
  const std::vector<Entry> entries = Entries(section.value, section.path, reporter);
  for (const Entry& entry : entries) {
    if (entry.key == "base") {
      base_entry = &entry;
      const auto value = ReadDuration(entry, Millis{1}, kMaxBackoffDuration, reporter);
      base_ok = value.has_value();
      if (value) backoff.base = *value;
    } else if (entry.key == "factor") {
      factor_entry = &entry;
      if (const auto value = ReadNumber(entry, 1.0, 10.0, "1.0", "10.0", reporter)) backoff.factor = *value;
    } else if (entry.key == "cap") {
      cap_entry = &entry;
      const auto value = ReadDuration(entry, Millis{1}, kMaxBackoffDuration, reporter);
      cap_ok = value.has_value();
      if (value) backoff.cap = *value;
    } else if (entry.key == "jitter") {
      if (const auto value = ReadNumber(entry, 0.0, 1.0, "0", "1", reporter)) backoff.jitter = *value;
    } else if (entry.key == "schedule") {
      schedule_entry = &entry;
      if (!entry.value.IsSequence() || entry.value.size() == 0) {
        reporter.Add(entry.Where(), entry.path,
                     "expected a non-empty list of durations (like [10s, 1m, 5m]), got " +
                         (entry.value.IsSequence() ? std::string("an empty list") : Describe(entry.value)));
        schedule_ok = false;
        continue;
      }
      std::size_t index = 0;
      for (const YAML::Node& item : entry.value) {
        const std::string path = entry.path + "[" + std::to_string(index++) + "]";
        const YAML::Mark where = item.Mark().is_null() ? entry.Where() : item.Mark();
        if (const auto value = ReadDurationNode(item, where, path, Millis{0}, kMaxBackoffDuration, reporter)) {
          backoff.schedule.push_back(*value);
        } else {
          schedule_ok = false;
        }
      }
    } else {
      ReportUnknownKey(entry, "base, factor, cap, jitter, schedule", reporter);
    }
  }

  if (schedule_entry != nullptr) {
    if (base_entry != nullptr || factor_entry != nullptr) {
      reporter.Add(schedule_entry->key_node.Mark(), schedule_entry->path,
                   "cannot be combined with backoff.base or backoff.factor (the schedule replaces them)");
    }
    if (schedule_ok && cap_ok) {
      for (std::size_t i = 0; i < backoff.schedule.size(); ++i) {
        if (backoff.schedule[i] > backoff.cap) {
          const YAML::Node item = schedule_entry->value[i];
          reporter.Add(
              item.Mark().is_null() ? schedule_entry->Where() : item.Mark(),
              schedule_entry->path + "[" + std::to_string(i) + "]",
              FormatDuration(backoff.schedule[i]) + " exceeds backoff.cap (" + FormatDuration(backoff.cap) + ")");
        }
      }
    }
  } else if (base_ok && cap_ok && backoff.cap < backoff.base) {
    const Entry* at = cap_entry != nullptr ? cap_entry : base_entry;
    const std::string path = cap_entry != nullptr ? cap_entry->path : section.path + ".cap";
    reporter.Add(at != nullptr ? at->Where() : section.key_node.Mark(), path,
                 "must be at least backoff.base (" + FormatDuration(backoff.base) + "), got " +
                     FormatDuration(backoff.cap) + (cap_entry != nullptr ? "" : " (the default)"));
  }
}

void ParseTimeouts(const Entry& section, model::Policy& policy, Reporter& reporter) {
  if (!IsMappingOrEmpty(section, "timeouts", reporter) || section.value.IsNull()) return;
  bool connect_ok = true, request_ok = true;
  const Entry* connect_entry = nullptr;
  const std::vector<Entry> entries = Entries(section.value, section.path, reporter);
  for (const Entry& entry : entries) {
    if (entry.key == "connect") {
      connect_entry = &entry;
      const auto value = ReadDuration(entry, Millis{1}, kMaxRequestTimeout, reporter);
      connect_ok = value.has_value();
      if (value) policy.connect_timeout = *value;
    } else if (entry.key == "request") {
      const auto value = ReadDuration(entry, Millis{1}, kMaxRequestTimeout, reporter);
      request_ok = value.has_value();
      if (value) policy.request_timeout = *value;
    } else {
      ReportUnknownKey(entry, "connect, request", reporter);
    }
  }
  if (connect_ok && request_ok && policy.connect_timeout > policy.request_timeout) {
    const std::string path = connect_entry != nullptr ? connect_entry->path : section.path + ".connect";
    reporter.Add(connect_entry != nullptr ? connect_entry->Where() : section.key_node.Mark(), path,
                 "must not exceed timeouts.request (" + FormatDuration(policy.request_timeout) + "), got " +
                     FormatDuration(policy.connect_timeout));
  }
}

void ParseLimits(const Entry& section, model::Policy& policy, Reporter& reporter) {
  if (!IsMappingOrEmpty(section, "limits", reporter) || section.value.IsNull()) return;
  for (const Entry& entry : Entries(section.value, section.path, reporter)) {
    if (entry.key == "max_in_flight") {
      if (const auto v = ReadInteger(entry, 0, 100000, reporter)) policy.limits.max_in_flight = static_cast<int>(*v);
    } else if (entry.key == "per_second") {
      if (const auto v = ReadNumber(entry, 0.0, 1000000.0, "0", "1000000", reporter)) policy.limits.per_second = *v;
    } else if (entry.key == "burst") {
      if (const auto v = ReadInteger(entry, 0, 1000000, reporter)) policy.limits.burst = static_cast<int>(*v);
    } else {
      ReportUnknownKey(entry, "max_in_flight, per_second, burst", reporter);
    }
  }
}

void ParseCircuitBreaker(const Entry& section, model::Policy& policy, Reporter& reporter) {
  if (!IsMappingOrEmpty(section, "circuit breaker settings", reporter) || section.value.IsNull()) return;
  for (const Entry& entry : Entries(section.value, section.path, reporter)) {
    if (entry.key == "failures") {
      if (const auto v = ReadInteger(entry, 0, 100000, reporter))
        policy.circuit_breaker.failures = static_cast<int>(*v);
    } else if (entry.key == "cooldown") {
      if (const auto v = ReadDuration(entry, Millis{1}, Millis{24LL * 3600 * 1000}, reporter)) {
        policy.circuit_breaker.cooldown = *v;
      }
    } else {
      ReportUnknownKey(entry, "failures, cooldown", reporter);
    }
  }
}

void ParseAutoPause(const Entry& section, model::Policy& policy, Reporter& reporter) {
  if (!IsMappingOrEmpty(section, "auto_pause settings", reporter) || section.value.IsNull()) return;
  for (const Entry& entry : Entries(section.value, section.path, reporter)) {
    if (entry.key == "consecutive_failures") {
      if (const auto v = ReadInteger(entry, 0, 1000000, reporter)) {
        policy.auto_pause.consecutive_failures = static_cast<int>(*v);
      }
    } else if (entry.key == "failing_for") {
      if (const auto v = ReadDuration(entry, Millis{0}, kMaxBackoffDuration, reporter))
        policy.auto_pause.failing_for = *v;
    } else {
      ReportUnknownKey(entry, "consecutive_failures, failing_for", reporter);
    }
  }
}

void ParseIntegration(const Entry& section, model::Policy& policy, Reporter& reporter) {
  if (!IsMappingOrEmpty(section, "integration settings", reporter) || section.value.IsNull()) return;
  auto& integration = policy.integration;
  for (const Entry& entry : Entries(section.value, section.path, reporter)) {
    if (entry.key == "health_check_interval") {
      if (const auto v = ReadDuration(entry, Millis{100}, Millis{24LL * 3600 * 1000}, reporter)) {
        integration.health_check_interval = *v;
      }
    } else if (entry.key == "unhealthy_after") {
      if (const auto v = ReadInteger(entry, 1, 1000, reporter)) integration.unhealthy_after = static_cast<int>(*v);
    } else if (entry.key == "run_when_degraded") {
      if (const auto v = ReadBool(entry, reporter)) integration.run_when_degraded = *v;
    } else if (entry.key == "max_rate_limited_waits") {
      if (const auto v = ReadInteger(entry, 0, 100000, reporter))
        integration.max_rate_limited_waits = static_cast<int>(*v);
    } else if (entry.key == "token_refresh_margin") {
      if (const auto v = ReadDuration(entry, Millis{0}, Millis{3600000}, reporter))
        integration.token_refresh_margin = *v;
    } else {
      ReportUnknownKey(entry,
                       "health_check_interval, unhealthy_after, run_when_degraded, max_rate_limited_waits, "
                       "token_refresh_margin",
                       reporter);
    }
  }
}

model::Policy ParsePolicy(const Entry& section, Reporter& reporter) {
  model::Policy policy;
  policy.name = section.key;
  if (!IsMappingOrEmpty(section, "policy settings", reporter) || section.value.IsNull()) return policy;
  const std::vector<Entry> entries = Entries(section.value, section.path, reporter);
  for (const Entry& entry : entries) {
    if (entry.key == "max_attempts") {
      if (const auto value = ReadInteger(entry, 1, 100, reporter)) policy.max_attempts = static_cast<int>(*value);
    } else if (entry.key == "backoff") {
      ParseBackoff(entry, policy.backoff, reporter);
    } else if (entry.key == "timeouts") {
      ParseTimeouts(entry, policy, reporter);
    } else if (entry.key == "retryable_statuses") {
      if (auto value = ReadStatuses(entry, reporter)) policy.retryable_statuses = std::move(*value);
    } else if (entry.key == "response_excerpt_bytes") {
      if (const auto value = ReadInteger(entry, 0, static_cast<long long>(kMaxExcerptBytes), reporter)) {
        policy.response_excerpt_bytes = static_cast<std::size_t>(*value);
      }
    } else if (entry.key == "max_body_bytes") {
      if (const auto value = ReadInteger(entry, 1024, 64LL << 20, reporter)) {
        policy.max_body_bytes = static_cast<std::size_t>(*value);
      }
    } else if (entry.key == "endpoint") {
      ParseEndpoint(entry, policy, reporter);
    } else if (entry.key == "limits") {
      ParseLimits(entry, policy, reporter);
    } else if (entry.key == "circuit_breaker") {
      ParseCircuitBreaker(entry, policy, reporter);
    } else if (entry.key == "auto_pause") {
      ParseAutoPause(entry, policy, reporter);
    } else if (entry.key == "integration") {
      ParseIntegration(entry, policy, reporter);
    } else {
      ReportUnknownKey(entry,
                       "max_attempts, backoff, timeouts, retryable_statuses, response_excerpt_bytes, max_body_bytes, "
                       "endpoint, limits, circuit_breaker, auto_pause, integration",
                       reporter);
    }
  }
  return policy;
}

std::map<std::string, model::Policy> ParseRoot(const YAML::Node& root, Reporter& reporter) {
  std::map<std::string, model::Policy> policies;
  if (!root.IsDefined() || root.IsNull()) {
    reporter.Add("policies", "missing; the file must define at least the policy 'default'");
    return policies;
  }
  if (!root.IsMap()) {
    reporter.Add(root.Mark(), "(top level)", "expected a mapping with the key 'policies', got " + Describe(root));
    return policies;
  }
  const Entry* section = nullptr;
  const std::vector<Entry> entries = Entries(root, "", reporter);
  for (const Entry& entry : entries) {
    if (entry.key == "policies") {
      section = &entry;
    } else {
      ReportUnknownKey(entry, "policies", reporter);
    }
  }
  if (section == nullptr) {
    reporter.Add(root.Mark(), "policies", "missing; the file must define at least the policy 'default'");
    return policies;
  }
  if (section->value.IsNull() || (section->value.IsMap() && section->value.size() == 0)) {
    reporter.Add(section->Where(), section->path,
                 "no policies defined; the file must define at least the policy 'default'");
    return policies;
  }
  if (!section->value.IsMap()) {
    reporter.Add(section->Where(), section->path,
                 "expected a mapping from policy names to policies, got " + Describe(section->value));
    return policies;
  }
  for (const Entry& entry : Entries(section->value, section->path, reporter)) {
    if (!IsValidPolicyName(entry.key)) {
      reporter.Add(entry.key_node.Mark(), section->path,
                   "invalid policy name '" + Printable(entry.key) +
                       "' (expected 1 to 64 characters from a-z, 0-9, '_' and '-')");
      ParsePolicy(entry, reporter);  // still report problems inside it
      continue;
    }
    policies.emplace(entry.key, ParsePolicy(entry, reporter));
  }
  if (policies.find("default") == policies.end()) {
    // An invalid spelling of "default" was already reported; still say what is missing.
    reporter.Add(section->key_node.Mark(), "policies.default",
                 "missing; every policies file must define a policy named 'default'");
  }
  return policies;
}

}  // namespace

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(JoinLines(problems)), problems_(std::move(problems)) {}

PolicySet::PolicySet(std::map<std::string, model::Policy> policies) : policies_(std::move(policies)) {
  // The map key is authoritative for the name.
  for (auto& [name, policy] : policies_) policy.name = name;
}

const model::Policy* PolicySet::Find(const std::string& name) const {
  const auto it = policies_.find(name);
  return it == policies_.end() ? nullptr : &it->second;
}

model::Millis PolicySet::LongestRequestTimeout() const {
  model::Millis longest{0};
  for (const auto& [name, policy] : policies_) longest = std::max(longest, policy.request_timeout);
  return longest;
}

PolicySet ParsePolicies(const std::string& yaml_text, const std::string& source) {
  Reporter reporter(source);
  std::map<std::string, model::Policy> policies;
  ParseSingleDocument(yaml_text, reporter, [&](const YAML::Node& root) { policies = ParseRoot(root, reporter); });
  reporter.ThrowIfAny();
  return PolicySet(std::move(policies));
}

PolicySet LoadPoliciesFile(const std::string& path) {
  return ParsePolicies(ReadConfigFile(path, "policies file"), path);
}

}  // namespace pgcourier::config

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
#include <cerrno>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include "config/duration.hpp"

namespace pgcourier::config {
namespace {

using model::Millis;

constexpr Millis kMaxBackoffDuration{30LL * 24 * 3600 * 1000};  // 30d
constexpr Millis kMaxRequestTimeout{10 * 60 * 1000};             // 10m
constexpr Millis kMaxDuration{std::numeric_limits<Millis::rep>::max()};
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

// Text from the file, made safe for a one-line message: control characters
// escaped, long values shortened.
std::string Printable(std::string_view text, std::size_t max_chars = 60) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == max_chars) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return "'" + Printable(node.Scalar()) + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

// A scalar written in quotes (or with the non-specific tag "!") is a string.
bool IsQuoted(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "!"; }

// Collects problems; they are reported in file order (those without a
// position first), whatever order the checks ran in.
class Reporter {
 public:
  explicit Reporter(std::string source) : source_(std::move(source)) {}

  void Add(const YAML::Mark& mark, std::string_view path, std::string_view message) {
    const int line_number = mark.is_null() || mark.line < 0 ? 0 : mark.line + 1;
    std::string line = source_;
    if (line_number > 0) line += ":" + std::to_string(line_number);
    line += ": ";
    if (!path.empty()) {
      line += path;
      line += ": ";
    }
    line += message;
    problems_.emplace_back(line_number, std::move(line));
  }
  void Add(std::string_view path, std::string_view message) { Add(YAML::Mark::null_mark(), path, message); }

  void ThrowIfAny() {
    if (problems_.empty()) return;
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> lines;
    lines.reserve(problems_.size());
    for (auto& problem : problems_) lines.push_back(std::move(problem.second));
    throw ConfigError(std::move(lines));
  }

 private:
  std::string source_;
  std::vector<std::pair<int, std::string>> problems_;
};

std::string ChildPath(const std::string& parent, std::string_view key) {
  std::string printable = Printable(key);
  return parent.empty() ? printable : parent + "." + printable;
}

// One key/value pair of a mapping, with its YAML path.
struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
  std::string path;

  // Where to point at for a problem with the value. A missing value has no
  // useful position of its own (yaml-cpp points at the next line).
  YAML::Mark Where() const {
    const YAML::Mark mark = value.Mark();
    if (!value.IsDefined() || value.IsNull() || mark.is_null()) return key_node.Mark();
    return mark;
  }
};

// The entries of a mapping in document order; reports non-scalar and duplicate keys.
std::vector<Entry> Entries(const YAML::Node& map, const std::string& path, Reporter& reporter) {
  std::vector<Entry> out;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      reporter.Add(key.Mark(), path.empty() ? "(top level)" : path,
                   "keys must be plain strings, got " + Describe(key) + " as a key");
      continue;
    }
    std::string name = key.Scalar();
    std::string child = ChildPath(path, name);
    if (!seen.insert(name).second) {
      reporter.Add(key.Mark(), child, "duplicate key");
      continue;
    }
    out.push_back(Entry{std::move(name), key, it->second, std::move(child)});
  }
  return out;
}

void ReportUnknownKey(const Entry& entry, std::string_view expected, Reporter& reporter) {
  reporter.Add(entry.key_node.Mark(), entry.path, "unknown key (expected one of: " + std::string(expected) + ")");
}

// A mapping-valued key: a mapping, or nothing (= all defaults). Otherwise reports.
bool IsMappingOrEmpty(const Entry& entry, std::string_view what, Reporter& reporter) {
  if (entry.value.IsMap() || entry.value.IsNull()) return true;
  reporter.Add(entry.Where(), entry.path, "expected a mapping of " + std::string(what) + ", got " + Describe(entry.value));
  return false;
}

std::optional<long long> ParseInteger(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<long long> ReadInteger(const Entry& entry, long long low, long long high, Reporter& reporter) {
  const std::string expectation =
      "expected an integer from " + std::to_string(low) + " to " + std::to_string(high) + ", got ";
  if (entry.value.IsScalar()) {
    const std::optional<long long> value = ParseInteger(entry.value.Scalar());
    if (value && IsQuoted(entry.value)) {
      reporter.Add(entry.Where(), entry.path, expectation + "the quoted string " + Describe(entry.value) + " (remove the quotes)");
      return std::nullopt;
    }
    if (value && *value >= low && *value <= high) return value;
  }
  reporter.Add(entry.Where(), entry.path, expectation + Describe(entry.value));
  return std::nullopt;
}

std::optional<double> ReadNumber(const Entry& entry, double low, double high, std::string_view low_text,
                                 std::string_view high_text, Reporter& reporter) {
  const std::string expectation =
      "expected a number from " + std::string(low_text) + " to " + std::string(high_text) + ", got ";
  if (entry.value.IsScalar()) {
    std::string_view text = entry.value.Scalar();
    if (!text.empty() && text.front() == '+') text.remove_prefix(1);
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    const bool parsed = !text.empty() && ec == std::errc() && end == text.data() + text.size() && std::isfinite(value);
    if (parsed && IsQuoted(entry.value)) {
      reporter.Add(entry.Where(), entry.path, expectation + "the quoted string " + Describe(entry.value) + " (remove the quotes)");
      return std::nullopt;
    }
    if (parsed && value >= low && value <= high) return value;
  }
  reporter.Add(entry.Where(), entry.path, expectation + Describe(entry.value));
  return std::nullopt;
}

std::string DurationExpectation(Millis low, Millis high) {
  std::string out = "expected a duration";
  if (low == Millis{1} && high == kMaxDuration) {
    out += " greater than 0";
  } else if (low == Millis{1}) {
    out += " greater than 0 and at most " + FormatDuration(high);
  } else if (low == Millis{0} && high != kMaxDuration) {
    out += " of at most " + FormatDuration(high);
  } else if (low != Millis{0}) {
    out += " from " + FormatDuration(low) + " to " + FormatDuration(high);
  }
  return out + " (like 250ms, 5s, 2m or 1h), got ";
}

std::optional<Millis> ReadDurationNode(const YAML::Node& node, const YAML::Mark& where, const std::string& path,
                                       Millis low, Millis high, Reporter& reporter) {
  if (node.IsScalar()) {
    const std::optional<Millis> value = ParseDuration(node.Scalar());
    if (value && *value >= low && *value <= high) return value;
  }
  reporter.Add(where, path, DurationExpectation(low, high) + Describe(node));
  return std::nullopt;
}

std::optional<Millis> ReadDuration(const Entry& entry, Millis low, Millis high, Reporter& reporter) {
  return ReadDurationNode(entry.value, entry.Where(), entry.path, low, high, reporter);
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
                 "expected a list of status codes (like [429, \"5xx\", \"500-504\"]), got " + Describe(entry.value));
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
      reporter.Add(item.Mark().is_null() ? entry.Where() : item.Mark(), path,
                   "expected a status code from 100 to 599, \"4xx\", \"5xx\" or a range like \"500-504\", got " +
                       Describe(item));
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
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
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
          reporter.Add(item.Mark().is_null() ? schedule_entry->Where() : item.Mark(),
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
    } else {
      ReportUnknownKey(entry, "max_attempts, backoff, timeouts, retryable_statuses, response_excerpt_bytes", reporter);
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
    reporter.Add(section->Where(), section->path, "no policies defined; the file must define at least the policy 'default'");
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
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(yaml_text);
    if (documents.size() > 1) {
      reporter.Add(documents[1].Mark(), "", "expected a single YAML document, found " + std::to_string(documents.size()));
    } else {
      policies = ParseRoot(documents.empty() ? YAML::Node() : documents.front(), reporter);
    }
  } catch (const YAML::Exception& e) {
    reporter.Add(e.mark, "", "invalid YAML: " + e.msg);
  }
  reporter.ThrowIfAny();
  return PolicySet(std::move(policies));
}

PolicySet LoadPoliciesFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError({path + ": cannot read policies file: is a directory"});
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    throw ConfigError({path + ": cannot read policies file: " +
                       (error != 0 ? std::generic_category().message(error) : std::string("open failed"))});
  }
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw ConfigError({path + ": cannot read policies file: read error"});
  return ParsePolicies(text, path);
}

}  // namespace pgcourier::config

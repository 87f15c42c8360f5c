// Settings file format: one YAML mapping whose keys are the fields of
// config::Settings, all optional:
//
//   database_url: "postgresql://pgcourier@/pgcourier"   # string
//   worker_id: "host-a"          # string without control characters
//   concurrency: 256             # 1..100000
//   max_claim_batch: 256         # 1..10000
//   lease_margin: 30s            # duration > 0
//   poll_interval: 1s            # duration > 0
//   rescue_interval: 5s          # duration > 0
//   shutdown_grace: 25s          # duration > 0, <= 1h
//   policies_file: /etc/pgcourier/policies.yaml   # non-empty
//   master_key_file: ""          # string
//   metrics_address: "127.0.0.1:9464"   # host:port, [v6addr]:port, or "" to disable
//   log_level: info              # trace, debug, info, warn, error, critical, off
//   user_agent: "pgcourier/0.1"  # string without control characters
//
// A key with no value means the empty string for string settings and is an
// error for the others. ParseSettings reports wrong types, unknown and
// duplicate keys and also applies the ValidateSettings checks to the keys the
// file sets (with line numbers). Callers that apply environment or command
// line overrides afterwards must call ValidateSettings on the final result.
#include "config/settings.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "config/duration.hpp"
#include "config/policies.hpp"

namespace pgcourier::config {
namespace {

using model::Millis;

constexpr Millis kMaxDuration{std::numeric_limits<Millis::rep>::max()};

// ---------------------------------------------------------------------------
// Field table: the one place that knows names, types and valid values.

struct IntField {
  std::string_view name;
  int Settings::*member;
  int low;
  int high;
};

struct DurationField {
  std::string_view name;
  Millis Settings::*member;
  Millis low;
  Millis high;
};

struct StringField {
  std::string_view name;
  std::string Settings::*member;
  // Returns an empty string when the value is acceptable, else the message.
  std::string (*check)(const std::string& value);
};

// Text from the file made safe for a one-line message.
std::string Printable(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == 60) {
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

std::string Quote(std::string_view text) { return "'" + Printable(text) + "'"; }

bool HasControlCharacters(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
}

std::string CheckAnything(const std::string&) { return {}; }

std::string CheckNoControlCharacters(const std::string& value) {
  return HasControlCharacters(value) ? "must not contain control characters, got " + Quote(value) : std::string();
}

std::string CheckNotEmpty(const std::string& value) {
  if (value.empty()) return "must not be empty";
  return CheckNoControlCharacters(value);
}

std::string CheckLogLevel(const std::string& value) {
  static constexpr std::array<std::string_view, 7> kLevels{"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(kLevels.begin(), kLevels.end(), value) != kLevels.end()) return {};
  return "expected one of trace, debug, info, warn, error, critical, off, got " + Quote(value);
}

bool IsValidPort(std::string_view text) {
  if (text.empty() || text.size() > 5) return false;
  int port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && end == text.data() + text.size() && port >= 1 && port <= 65535;
}

bool IsValidHostAndPort(std::string_view address) {
  std::string_view host;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    const std::size_t close = address.find("]:");
    if (close == std::string_view::npos) return false;
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
    if (host.empty() || host.find(':') == std::string_view::npos) return false;
    const bool chars_ok = std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    });
    if (!chars_ok) return false;
  } else {
    const std::size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.empty() || host.size() > 253) return false;
    const bool chars_ok = std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
             c == '_';
    });
    if (!chars_ok) return false;
  }
  return IsValidPort(port);
}

std::string CheckMetricsAddress(const std::string& value) {
  if (value.empty() || IsValidHostAndPort(value)) return {};
  return "expected host:port (like 127.0.0.1:9464, localhost:9464 or [::1]:9464) or an empty string to "
         "disable metrics, got " +
         Quote(value);
}

constexpr std::array<IntField, 2> kIntFields{{
    {"concurrency", &Settings::concurrency, 1, 100000},
    {"max_claim_batch", &Settings::max_claim_batch, 1, 10000},
}};

constexpr std::array<DurationField, 4> kDurationFields{{
    {"lease_margin", &Settings::lease_margin, Millis{1}, kMaxDuration},
    {"poll_interval", &Settings::poll_interval, Millis{1}, kMaxDuration},
    {"rescue_interval", &Settings::rescue_interval, Millis{1}, kMaxDuration},
    {"shutdown_grace", &Settings::shutdown_grace, Millis{1}, Millis{3600000}},
}};

constexpr std::array<StringField, 7> kStringFields{{
    {"database_url", &Settings::database_url, &CheckAnything},
    {"worker_id", &Settings::worker_id, &CheckNoControlCharacters},
    {"policies_file", &Settings::policies_file, &CheckNotEmpty},
    {"master_key_file", &Settings::master_key_file, &CheckNoControlCharacters},
    {"metrics_address", &Settings::metrics_address, &CheckMetricsAddress},
    {"log_level", &Settings::log_level, &CheckLogLevel},
    {"user_agent", &Settings::user_agent, &CheckNoControlCharacters},
}};

constexpr std::string_view kKnownKeys =
    "database_url, worker_id, concurrency, max_claim_batch, lease_margin, poll_interval, rescue_interval, "
    "shutdown_grace, policies_file, master_key_file, metrics_address, log_level, user_agent";

std::string IntExpectation(const IntField& field) {
  return "expected an integer from " + std::to_string(field.low) + " to " + std::to_string(field.high) + ", got ";
}

std::string DurationExpectation(const DurationField& field) {
  std::string out = "expected a duration greater than 0";
  if (field.high != kMaxDuration) out += " and at most " + FormatDuration(field.high);
  return out + " (like 250ms, 5s, 2m or 1h), got ";
}

// Messages (empty when valid) for one field of `settings`.
std::string CheckInt(const IntField& field, const Settings& settings) {
  const int value = settings.*field.member;
  if (value >= field.low && value <= field.high) return {};
  return IntExpectation(field) + std::to_string(value);
}

std::string CheckDuration(const DurationField& field, const Settings& settings) {
  const Millis value = settings.*field.member;
  if (value >= field.low && value <= field.high) return {};
  return DurationExpectation(field) + FormatDuration(value);
}

// ---------------------------------------------------------------------------
// YAML reading.

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return Quote(node.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

class Reporter {
 public:
  explicit Reporter(std::string source) : source_(std::move(source)) {}
  void Add(const YAML::Mark& mark, std::string_view path, std::string_view message) {
    std::string line = source_;
    if (!mark.is_null() && mark.line >= 0) line += ":" + std::to_string(mark.line + 1);
    line += ": ";
    if (!path.empty()) {
      line += path;
      line += ": ";
    }
    line += message;
    problems_.push_back(std::move(line));
  }
  void ThrowIfAny() {
    if (!problems_.empty()) throw ConfigError(std::move(problems_));
  }

 private:
  std::string source_;
  std::vector<std::string> problems_;
};

// Position of a value; a missing value is reported at its key.
YAML::Mark Where(const YAML::Node& key, const YAML::Node& value) {
  if (!value.IsDefined() || value.IsNull() || value.Mark().is_null()) return key.Mark();
  return value.Mark();
}

void ParseEntry(const YAML::Node& key, const YAML::Node& value, const std::string& name, Settings& settings,
                Reporter& reporter) {
  const YAML::Mark where = Where(key, value);
  for (const IntField& field : kIntFields) {
    if (field.name != name) continue;
    if (value.IsScalar()) {
      std::string_view text = value.Scalar();
      if (!text.empty() && text.front() == '+') text.remove_prefix(1);
      long long number = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
      const bool parsed = !text.empty() && ec == std::errc() && end == text.data() + text.size();
      if (parsed && value.Tag() == "!") {
        reporter.Add(where, field.name,
                     IntExpectation(field) + "the quoted string " + Describe(value) + " (remove the quotes)");
        return;
      }
      if (parsed && number >= field.low && number <= field.high) {
        settings.*field.member = static_cast<int>(number);
        return;
      }
    }
    reporter.Add(where, field.name, IntExpectation(field) + Describe(value));
    return;
  }
  for (const DurationField& field : kDurationFields) {
    if (field.name != name) continue;
    if (value.IsScalar()) {
      const std::optional<Millis> duration = ParseDuration(value.Scalar());
      if (duration && *duration >= field.low && *duration <= field.high) {
        settings.*field.member = *duration;
        return;
      }
    }
    reporter.Add(where, field.name, DurationExpectation(field) + Describe(value));
    return;
  }
  for (const StringField& field : kStringFields) {
    if (field.name != name) continue;
    if (!value.IsScalar() && !value.IsNull()) {
      reporter.Add(where, field.name, "expected a string, got " + Describe(value));
      return;
    }
    std::string text = value.IsScalar() ? value.Scalar() : std::string();
    if (const std::string problem = field.check(text); !problem.empty()) {
      reporter.Add(where, field.name, problem);
      return;
    }
    settings.*field.member = std::move(text);
    return;
  }
  reporter.Add(key.Mark(), Printable(name),
               "unknown key (expected one of: " + std::string(kKnownKeys) + ")");
}

}  // namespace

Settings ParseSettings(const std::string& yaml_text, const std::string& source) {
  Reporter reporter(source);
  Settings settings;
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(yaml_text);
    const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
    if (documents.size() > 1) {
      reporter.Add(documents[1].Mark(), "", "expected a single YAML document, found " + std::to_string(documents.size()));
    } else if (root.IsMap()) {
      std::set<std::string> seen;
      for (auto it = root.begin(); it != root.end(); ++it) {
        const YAML::Node key = it->first;
        if (!key.IsScalar()) {
          reporter.Add(key.Mark(), "(top level)", "keys must be plain strings, got " + Describe(key) + " as a key");
          continue;
        }
        if (!seen.insert(key.Scalar()).second) {
          reporter.Add(key.Mark(), Printable(key.Scalar()), "duplicate key");
          continue;
        }
        ParseEntry(key, it->second, key.Scalar(), settings, reporter);
      }
    } else if (root.IsDefined() && !root.IsNull()) {
      reporter.Add(root.Mark(), "(top level)", "expected a mapping of settings, got " + Describe(root));
    }
  } catch (const YAML::Exception& e) {
    reporter.Add(e.mark, "", "invalid YAML: " + e.msg);
  }
  reporter.ThrowIfAny();
  return settings;
}

Settings LoadSettingsFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError({path + ": cannot read settings file: is a directory"});
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    throw ConfigError({path + ": cannot read settings file: " +
                       (error != 0 ? std::generic_category().message(error) : std::string("open failed"))});
  }
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw ConfigError({path + ": cannot read settings file: read error"});
  return ParseSettings(text, path);
}

void ValidateSettings(const Settings& settings, const std::string& source) {
  std::vector<std::string> problems;
  auto add = [&](std::string_view name, const std::string& message) {
    if (!message.empty()) problems.push_back(source + ": " + std::string(name) + ": " + message);
  };
  for (const IntField& field : kIntFields) add(field.name, CheckInt(field, settings));
  for (const DurationField& field : kDurationFields) add(field.name, CheckDuration(field, settings));
  for (const StringField& field : kStringFields) add(field.name, field.check(settings.*field.member));
  if (!problems.empty()) throw ConfigError(std::move(problems));
}

}  // namespace pgcourier::config

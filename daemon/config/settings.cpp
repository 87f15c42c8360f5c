// Settings file format: one YAML mapping whose keys are the fields of
// config::Settings, all optional:
//
//   database_url: "postgresql://pgcourier@/pgcourier"   # string
//   worker_id: "host-a"          # string without control characters
//   concurrency: 256             # 1..100000
//   max_claim_batch: 256         # 1..10000
//   max_claim_bytes: 8388608     # 1 MiB..1 GiB: payload bytes of one claim
//   max_in_flight_bytes: 67108864   # 1 MiB..2 GiB: payload bytes held at once
//   lease_duration: 15s          # 100ms..1h: renewed by heartbeat while in flight
//   database_timeout: 15s        # 1s..10m: a round trip longer than this is a hung database
//   poll_interval: 1s            # duration > 0
//   rescue_interval: 5s          # duration > 0
//   shutdown_grace: 25s          # duration > 0, <= 1h
//   policies_file: /etc/pgcourier/policies.yaml   # non-empty
//   master_key_file: ""          # string
//   metrics_address: "127.0.0.1:9464"   # host:port, [v6addr]:port (port 0..65535;
//                                       # 0 = ephemeral), or "" to disable
//   log_level: info              # trace, debug, info, warn, error, critical, off
//   log_format: text             # text or json
//   maintenance_interval: 5s     # 100ms..1h
//   retention_completed: 7d      # >= 10s
//   retention_dead_lettered: 30d # >= 1m
//   credential_expiry_warning: 7d  # >= 1m
//   delivery_events: all         # all, failures or none
//   database_pooler: none        # none or transaction (pgbouncer's pool_mode)
//   database_direct_url: ""      # with database_pooler: transaction, the direct URL
//   user_agent: "pgcourier/0.1"  # string without control characters
//   tenants: [acme, globex]      # serve only these tenants; empty or absent: all
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
#include <charconv>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "config/duration.hpp"
#include "config/policies.hpp"
#include "config/yaml_support.hpp"

namespace pgcourier::config {
namespace {

using detail::Describe;
using detail::DurationExpectation;
using detail::Entries;
using detail::Entry;
using detail::HasControlCharacters;
using detail::IntegerExpectation;
using detail::kMaxDuration;
using detail::ParseSingleDocument;
using detail::Quote;
using detail::ReadConfigFile;
using detail::ReadDuration;
using detail::ReadInteger;
using detail::ReportUnknownKey;
using detail::Reporter;
using model::Millis;

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

std::string CheckAnything(const std::string&) { return {}; }

std::string CheckNoControlCharacters(const std::string& value) {
  return HasControlCharacters(value) ? "must not contain control characters, got " + Quote(value) : std::string();
}

std::string CheckNotEmpty(const std::string& value) {
  if (value.empty()) return "must not be empty";
  return CheckNoControlCharacters(value);
}

std::string CheckLogFormat(const std::string& value) {
  if (value == "text" || value == "json") return {};
  return "expected text or json, got " + Quote(value);
}

std::string CheckDeliveryEvents(const std::string& value) {
  if (value == "all" || value == "failures" || value == "none") return {};
  return "expected all, failures or none, got " + Quote(value);
}

std::string CheckPooler(const std::string& value) {
  if (value == "none" || value == "transaction") return {};
  return "expected none (direct, or a pooler in session mode) or transaction, got " + Quote(value);
}

std::string CheckLogLevel(const std::string& value) {
  static constexpr std::array<std::string_view, 7> kLevels{"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(kLevels.begin(), kLevels.end(), value) != kLevels.end()) return {};
  return "expected one of trace, debug, info, warn, error, critical, off, got " + Quote(value);
}

// Decimal digits only (no sign), 0 to 65535. Port 0 asks the kernel for an
// ephemeral port (tests run several daemons side by side that way).
bool IsValidPort(std::string_view text) {
  if (text.empty() || text.size() > 5) return false;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  int port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && end == text.data() + text.size() && port <= 65535;
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

constexpr std::array<IntField, 4> kIntFields{{
    {"concurrency", &Settings::concurrency, 1, 100000},
    {"max_claim_batch", &Settings::max_claim_batch, 1, 10000},
    {"max_claim_bytes", &Settings::max_claim_bytes, 1 << 20, 1 << 30},
    {"max_in_flight_bytes", &Settings::max_in_flight_bytes, 1 << 20, 2147483647},
}};

constexpr std::array<DurationField, 9> kDurationFields{{
    {"lease_duration", &Settings::lease_duration, Millis{100}, Millis{3600000}},
    {"database_timeout", &Settings::database_timeout, Millis{1000}, Millis{600000}},
    {"poll_interval", &Settings::poll_interval, Millis{1}, kMaxDuration},
    {"rescue_interval", &Settings::rescue_interval, Millis{1}, kMaxDuration},
    {"shutdown_grace", &Settings::shutdown_grace, Millis{1}, Millis{3600000}},
    {"maintenance_interval", &Settings::maintenance_interval, Millis{100}, Millis{3600000}},
    // 10 s at least: short enough for a benchmark to reach pruning's steady state in a minute or two.
    {"retention_completed", &Settings::retention_completed, Millis{10000}, kMaxDuration},
    {"retention_dead_lettered", &Settings::retention_dead_lettered, Millis{60000}, kMaxDuration},
    {"credential_expiry_warning", &Settings::credential_expiry_warning, Millis{60000}, kMaxDuration},
}};

constexpr std::array<StringField, 11> kStringFields{{
    {"log_format", &Settings::log_format, &CheckLogFormat},
    {"database_url", &Settings::database_url, &CheckAnything},
    {"worker_id", &Settings::worker_id, &CheckNoControlCharacters},
    {"policies_file", &Settings::policies_file, &CheckNotEmpty},
    {"master_key_file", &Settings::master_key_file, &CheckNoControlCharacters},
    {"metrics_address", &Settings::metrics_address, &CheckMetricsAddress},
    {"log_level", &Settings::log_level, &CheckLogLevel},
    {"user_agent", &Settings::user_agent, &CheckNoControlCharacters},
    {"delivery_events", &Settings::delivery_events, &CheckDeliveryEvents},
    {"database_pooler", &Settings::database_pooler, &CheckPooler},
    {"database_direct_url", &Settings::database_direct_url, &CheckAnything},
}};

// Every key a settings file may have, for the unknown-key message: generated
// from the field tables above (and the one key parsed by hand, tenants), so
// that the list cannot leave a key out. database_url first (the one every
// file sets), then alphabetical.
const std::string& KnownKeys() {
  static const std::string keys = [] {
    std::vector<std::string_view> names = {"tenants"};
    for (const IntField& f : kIntFields) names.push_back(f.name);
    for (const DurationField& f : kDurationFields) names.push_back(f.name);
    for (const StringField& f : kStringFields) names.push_back(f.name);
    std::sort(names.begin(), names.end(), [](std::string_view a, std::string_view b) {
      return std::make_pair(a != "database_url", a) < std::make_pair(b != "database_url", b);
    });
    std::string out;
    for (const auto name : names) out.append(out.empty() ? "" : ", ").append(name);
    return out;
  }();
  return keys;
}

// Messages (empty when valid) for one field of `settings`.
std::string CheckInt(const IntField& field, const Settings& settings) {
  const int value = settings.*field.member;
  if (value >= field.low && value <= field.high) return {};
  return IntegerExpectation(field.low, field.high) + std::to_string(value);
}

std::string CheckDuration(const DurationField& field, const Settings& settings) {
  const Millis value = settings.*field.member;
  if (value >= field.low && value <= field.high) return {};
  return DurationExpectation(field.low, field.high) + FormatDuration(value);
}

// ---------------------------------------------------------------------------
// YAML reading.

void ParseEntry(const Entry& entry, Settings& settings, Reporter& reporter) {
  for (const IntField& field : kIntFields) {
    if (field.name != entry.key) continue;
    if (const auto value = ReadInteger(entry, field.low, field.high, reporter)) {
      settings.*field.member = static_cast<int>(*value);
    }
    return;
  }
  for (const DurationField& field : kDurationFields) {
    if (field.name != entry.key) continue;
    if (const auto value = ReadDuration(entry, field.low, field.high, reporter)) settings.*field.member = *value;
    return;
  }
  for (const StringField& field : kStringFields) {
    if (field.name != entry.key) continue;
    const YAML::Node& value = entry.value;
    if (!value.IsScalar() && !value.IsNull()) {
      reporter.Add(entry.Where(), entry.path, "expected a string, got " + Describe(value));
      return;
    }
    std::string text = value.IsScalar() ? value.Scalar() : std::string();
    if (const std::string problem = field.check(text); !problem.empty()) {
      reporter.Add(entry.Where(), entry.path, problem);
      return;
    }
    settings.*field.member = std::move(text);
    return;
  }
  if (entry.key == "tenants") {
    // Serve only these tenants (dedicated daemons for large tenants); empty = all.
    if (!entry.value.IsSequence() && !entry.value.IsNull()) {
      reporter.Add(entry.Where(), entry.path, "expected a list of tenant ids (like [acme, globex]), got " +
                                                  Describe(entry.value));
      return;
    }
    std::vector<std::string> tenants;
    std::size_t index = 0;
    for (const YAML::Node& item : entry.value) {
      const std::string path = entry.path + "[" + std::to_string(index++) + "]";
      if (!item.IsScalar() || item.Scalar().empty() || HasControlCharacters(item.Scalar())) {
        reporter.Add(item.Mark().is_null() ? entry.Where() : item.Mark(), path,
                     "expected a non-empty tenant id, got " + Describe(item));
        continue;
      }
      tenants.push_back(item.Scalar());
    }
    settings.tenants = std::move(tenants);
    return;
  }
  if (entry.key == "lease_margin") {
    // Retired: a lease was the longest request timeout plus this margin. A
    // file written for that version still starts the daemon.
    const YAML::Mark where = entry.Where();
    settings.notices.push_back(reporter.source() + (where.is_null() ? "" : ":" + std::to_string(where.line + 1)) +
                               ": lease_margin is no longer used (a lease lasts lease_duration, " +
                               FormatDuration(settings.lease_duration) +
                               " by default, and is renewed while its request runs); remove it");
    return;
  }
  ReportUnknownKey(entry, KnownKeys(), reporter);
}

}  // namespace

Settings ParseSettings(const std::string& yaml_text, const std::string& source) {
  Reporter reporter(source);
  Settings settings;
  ParseSingleDocument(yaml_text, reporter, [&](const YAML::Node& root) {
    if (root.IsMap()) {
      for (const Entry& entry : Entries(root, "", reporter)) ParseEntry(entry, settings, reporter);
    } else if (root.IsDefined() && !root.IsNull()) {
      reporter.Add(root.Mark(), "(top level)", "expected a mapping of settings, got " + Describe(root));
    }
  });
  reporter.ThrowIfAny();
  return settings;
}

Settings LoadSettingsFile(const std::string& path) {
  return ParseSettings(ReadConfigFile(path, "settings file"), path);
}

void ValidateSettings(const Settings& settings, const std::string& source) {
  std::vector<std::string> problems;
  auto add = [&](std::string_view name, const std::string& message) {
    if (!message.empty()) problems.push_back(source + ": " + std::string(name) + ": " + message);
  };
  for (const IntField& field : kIntFields) add(field.name, CheckInt(field, settings));
  for (const DurationField& field : kDurationFields) add(field.name, CheckDuration(field, settings));
  for (const StringField& field : kStringFields) add(field.name, field.check(settings.*field.member));
  if (settings.database_pooler == "transaction" && settings.database_direct_url.empty()) {
    add("database_direct_url",
        "needed with database_pooler: transaction (LISTEN and the maintenance lock need a session of their own, "
        "which a pooler in transaction mode does not keep): the URL of PostgreSQL itself");
  }
  if (!problems.empty()) throw ConfigError(std::move(problems));
}

}  // namespace pgcourier::config

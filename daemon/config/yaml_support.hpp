// YAML reading helpers shared by the policies file (policies.cpp) and the
// settings file (settings.cpp): safe quoting of file text for messages, the
// problem Reporter ("FILE:LINE: yaml.path: message" lines thrown together as
// one ConfigError), mapping entries with duplicate-key checks, integer,
// number and duration values, single-document parsing and file reading.
//
// Internal to daemon/config/: include it only from .cpp files in this folder
// (yaml-cpp is a private dependency of the config module). No shared state:
// a Reporter belongs to one parse.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/policy.hpp"

namespace pgcourier::config::detail {

// Settings and policies files larger than this are refused (a policies file
// with hundreds of policies is a few hundred KiB).
inline constexpr std::size_t kMaxConfigFileBytes = std::size_t{4} << 20;

// No upper limit for a duration value.
inline constexpr model::Millis kMaxDuration{std::numeric_limits<model::Millis::rep>::max()};

// Bytes below 0x20 and DEL.
bool HasControlCharacters(std::string_view text);

// Text from a file made safe for a one-line message: control characters
// escaped as \xNN, anything past 60 characters replaced by "...".
std::string Printable(std::string_view text);
// Printable(text) in single quotes.
std::string Quote(std::string_view text);
// A node for "got ..." in a message: a quoted scalar, "a list", "a mapping" or "nothing".
std::string Describe(const YAML::Node& node);
// A scalar written in quotes (or with the non-specific tag "!") is a string.
bool IsQuoted(const YAML::Node& node);

// Collects problems; they are reported in file order (those without a
// position first), whatever order the checks ran in.
class Reporter {
 public:
  // `source` (the file name) starts every message.
  explicit Reporter(std::string source) : source_(std::move(source)) {}

  // "SOURCE:LINE: PATH: MESSAGE"; without ":LINE" for a null mark, without
  // "PATH: " for an empty path.
  void Add(const YAML::Mark& mark, std::string_view path, std::string_view message);
  void Add(std::string_view path, std::string_view message) { Add(YAML::Mark::null_mark(), path, message); }

  // Throws ConfigError with every problem added so far, if there is any.
  void ThrowIfAny();

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::pair<int, std::string>> problems_;  // line number (0 = none), message
};

// The YAML path of `key` below `parent` ("" for the top level).
std::string ChildPath(const std::string& parent, std::string_view key);

// One key/value pair of a mapping, with its YAML path.
struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
  std::string path;

  // Where to point at for a problem with the value. A missing value has no
  // useful position of its own (yaml-cpp points at the next line).
  YAML::Mark Where() const;
};

// The entries of a mapping in document order; reports non-scalar and
// duplicate keys (and leaves those out).
std::vector<Entry> Entries(const YAML::Node& map, const std::string& path, Reporter& reporter);

// "unknown key (expected one of: EXPECTED)" at the key.
void ReportUnknownKey(const Entry& entry, std::string_view expected, Reporter& reporter);

// A decimal integer with an optional sign ("+5", "-3"); nothing else.
std::optional<long long> ParseInteger(std::string_view text);
// "expected an integer from LOW to HIGH, got " (the caller appends what it got).
std::string IntegerExpectation(long long low, long long high);
// An unquoted integer from low to high. Otherwise reports and returns nothing.
std::optional<long long> ReadInteger(const Entry& entry, long long low, long long high, Reporter& reporter);
// A mapping-valued key: a mapping, or nothing (= all defaults). Otherwise reports.
bool IsMappingOrEmpty(const Entry& entry, std::string_view what, Reporter& reporter);
// An unquoted true or false (reported otherwise).
std::optional<bool> ReadBool(const Entry& entry, Reporter& reporter);
// An unquoted finite number from low to high (low_text and high_text spell the
// bounds in the message). Otherwise reports and returns nothing.
std::optional<double> ReadNumber(const Entry& entry, double low, double high, std::string_view low_text,
                                 std::string_view high_text, Reporter& reporter);

// "expected a duration ... (like 250ms, 5s, 2m or 1h), got " for the range
// low..high (high = kMaxDuration: no upper limit).
std::string DurationExpectation(model::Millis low, model::Millis high);
// A duration (see duration.hpp) from low to high. Otherwise reports the
// problem at `where` / `path` and returns nothing.
std::optional<model::Millis> ReadDurationNode(const YAML::Node& node, const YAML::Mark& where, const std::string& path,
                                              model::Millis low, model::Millis high, Reporter& reporter);
std::optional<model::Millis> ReadDuration(const Entry& entry, model::Millis low, model::Millis high,
                                          Reporter& reporter);

// Parses `yaml_text`, which must hold at most one document, and hands its root
// to `parse_root` (an undefined node for an empty text). Reports YAML syntax
// errors (also those thrown inside parse_root) and extra documents.
void ParseSingleDocument(const std::string& yaml_text, Reporter& reporter,
                         const std::function<void(const YAML::Node& root)>& parse_root);

// The whole content of the regular file at `path`, at most
// kMaxConfigFileBytes; a FIFO, device or directory is refused without
// blocking. Throws ConfigError "PATH: cannot read WHAT: REASON" (WHAT like
// "policies file").
std::string ReadConfigFile(const std::string& path, std::string_view what);

}  // namespace pgcourier::config::detail

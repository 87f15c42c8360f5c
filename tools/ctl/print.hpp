// What pgcourierctl prints: aligned text tables and small text helpers, and
// JSON (--json) through a minimal streaming writer. The JSON shapes of the
// read commands are documented in README.md ("JSON output"): every key is
// always present (null when there is no value), numbers are numbers,
// timestamps are RFC 3339 strings ("2026-11-22T05:00:00+00:00", or
// "infinity"), and URLs are redacted as in the text output.
// Writes to std::cout; not thread-safe.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace pgcourier::ctl {

// Rows (the first is the header) in columns as wide as their widest cell, two spaces apart.
using Table = std::vector<std::vector<std::string>>;
void PrintTable(const Table& rows, std::string_view indent = "");

std::string OrElse(const std::string& value, const char* fallback);
std::string Dash(const std::string& value);  // "-" for ""
template <typename T>
std::string Dash(const std::optional<T>& value);
// "1 delivery", "3 deliveries".
std::string Count(long long n, std::string_view one, std::string_view many);
// The shortest text that reads back as the same double ("2.5", "0.1", "10").
std::string FormatNumber(double value);

// A PostgreSQL ISO timestamp ("2026-11-22 05:00:00+00", with or without a
// fraction) as RFC 3339 ("2026-11-22T05:00:00+00:00"); "infinity" stays.
std::string Rfc3339(std::string_view pg_timestamp);

// Streaming JSON: objects and arrays nest; keys and values in order. Strings
// are escaped (control characters as \uXXXX; invalid UTF-8 becomes U+FFFD).
// Printed with two-space indentation and a final newline by Finish().
class Json {
 public:
  explicit Json(std::ostream& out) : out_(out) {}

  Json& BeginObject();
  Json& EndObject();
  Json& BeginArray();
  Json& EndArray();
  Json& Key(std::string_view key);

  Json& String(std::string_view value);
  Json& Int(long long value);
  Json& Number(double value);
  Json& Bool(bool value);
  Json& Null();
  // A value that is JSON text already (from PostgreSQL's jsonb output); "" writes null.
  Json& Raw(std::string_view json);

  // Key + value shorthands. StringOrNull/Time write null for "".
  Json& Field(std::string_view key, std::string_view value) { return Key(key).String(value); }
  Json& Field(std::string_view key, const char* value) { return Key(key).String(value); }
  Json& Field(std::string_view key, long long value) { return Key(key).Int(value); }
  Json& Field(std::string_view key, int value) { return Key(key).Int(value); }
  Json& Field(std::string_view key, bool value) { return Key(key).Bool(value); }
  Json& Field(std::string_view key, double value) { return Key(key).Number(value); }
  Json& Field(std::string_view key, const std::optional<int>& value);
  Json& Field(std::string_view key, const std::optional<double>& value);
  Json& StringOrNull(std::string_view key, const std::string& value);
  Json& Time(std::string_view key, const std::string& pg_timestamp);
  Json& Strings(std::string_view key, const std::vector<std::string>& values);

  void Finish();

 private:
  void BeforeValue();
  void Newline();
  void WriteString(std::string_view value);

  struct Level {
    bool object;
    int count = 0;
  };
  std::ostream& out_;
  std::vector<Level> levels_;
  bool after_key_ = false;
};

template <typename T>
std::string Dash(const std::optional<T>& value) {
  if (!value) return "-";
  if constexpr (std::is_floating_point_v<T>) {
    return FormatNumber(*value);
  } else {
    return std::to_string(*value);
  }
}

}  // namespace pgcourier::ctl

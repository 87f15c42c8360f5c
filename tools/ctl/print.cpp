#include "ctl/print.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace pgcourier::ctl {

void PrintTable(const Table& rows, std::string_view indent) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line(indent);
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

std::string OrElse(const std::string& value, const char* fallback) { return value.empty() ? fallback : value; }

std::string Dash(const std::string& value) { return OrElse(value, "-"); }

std::string Count(long long n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string FormatNumber(double value) {
  std::array<char, 64> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  return ec == std::errc() ? std::string(buf.data(), end) : std::to_string(value);
}

std::string Rfc3339(std::string_view text) {
  if (text.size() < 19 || text[10] != ' ') return std::string(text);  // infinity, -infinity, or not a timestamp
  std::string out(text);
  out[10] = 'T';
  // The offset: the last + or - after the time ("+00", "+05:30", "-08").
  const auto sign = out.find_last_of("+-");
  if (sign != std::string::npos && sign > 18 && out.size() - sign == 3) out += ":00";
  return out;
}

Json& Json::BeginObject() {
  BeforeValue();
  out_ << '{';
  levels_.push_back({true});
  return *this;
}

Json& Json::EndObject() {
  const bool empty = levels_.back().count == 0;
  levels_.pop_back();
  if (!empty) Newline();
  out_ << '}';
  return *this;
}

Json& Json::BeginArray() {
  BeforeValue();
  out_ << '[';
  levels_.push_back({false});
  return *this;
}

Json& Json::EndArray() {
  const bool empty = levels_.back().count == 0;
  levels_.pop_back();
  if (!empty) Newline();
  out_ << ']';
  return *this;
}

Json& Json::Key(std::string_view key) {
  if (levels_.back().count++ > 0) out_ << ',';
  Newline();
  WriteString(key);
  out_ << ": ";
  after_key_ = true;
  return *this;
}

void Json::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (levels_.empty()) return;
  if (levels_.back().count++ > 0) out_ << ',';
  Newline();
}

void Json::Newline() {
  out_ << '\n';
  for (std::size_t i = 0; i < levels_.size(); ++i) out_ << "  ";
}

Json& Json::String(std::string_view value) {
  BeforeValue();
  WriteString(value);
  return *this;
}

void Json::WriteString(std::string_view value) {
  out_ << '"';
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out_ << '\\' << static_cast<char>(c);
    } else if (c == '\n') {
      out_ << "\\n";
    } else if (c == '\r') {
      out_ << "\\r";
    } else if (c == '\t') {
      out_ << "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out_ << buf;
    } else if (c < 0x80) {
      out_ << static_cast<char>(c);
    } else {
      // A valid UTF-8 sequence is copied; anything else becomes U+FFFD.
      const std::size_t length = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
      bool valid = length > 0 && i + length <= value.size();
      for (std::size_t k = 1; valid && k < length; ++k) {
        valid = (static_cast<unsigned char>(value[i + k]) & 0xC0) == 0x80;
      }
      if (valid) {
        out_ << value.substr(i, length);
        i += length - 1;
      } else {
        out_ << "\xEF\xBF\xBD";
      }
    }
  }
  out_ << '"';
}

Json& Json::Int(long long value) {
  BeforeValue();
  out_ << value;
  return *this;
}

Json& Json::Number(double value) {
  BeforeValue();
  if (std::isfinite(value)) {
    out_ << FormatNumber(value);
  } else {
    out_ << "null";
  }
  return *this;
}

Json& Json::Bool(bool value) {
  BeforeValue();
  out_ << (value ? "true" : "false");
  return *this;
}

Json& Json::Null() {
  BeforeValue();
  out_ << "null";
  return *this;
}

Json& Json::Raw(std::string_view json) {
  BeforeValue();
  if (json.empty()) {
    out_ << "null";
  } else {
    out_ << json;
  }
  return *this;
}

Json& Json::Field(std::string_view key, const std::optional<int>& value) {
  Key(key);
  return value ? Int(*value) : Null();
}

Json& Json::Field(std::string_view key, const std::optional<double>& value) {
  Key(key);
  return value ? Number(*value) : Null();
}

Json& Json::StringOrNull(std::string_view key, const std::string& value) {
  Key(key);
  return value.empty() ? Null() : String(value);
}

Json& Json::Time(std::string_view key, const std::string& pg_timestamp) {
  Key(key);
  return pg_timestamp.empty() ? Null() : String(Rfc3339(pg_timestamp));
}

Json& Json::Strings(std::string_view key, const std::vector<std::string>& values) {
  Key(key).BeginArray();
  for (const auto& v : values) String(v);
  return EndArray();
}

void Json::Finish() {
  out_ << '\n';
  out_.flush();
}

}  // namespace pgcourier::ctl

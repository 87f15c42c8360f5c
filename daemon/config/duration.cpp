// Duration grammar (no spaces, case-sensitive):
//   duration  := "0" | component+
//   component := digits unit
//   unit      := "d" | "h" | "m" | "s" | "ms"
// Units must appear from largest to smallest, each at most once ("1h30m" is
// fine, "30m1h" and "1m1m" are not). Fractions ("1.5s"), signs and bare
// numbers other than "0" are rejected, as is any total that does not fit in
// std::chrono::milliseconds.
#include "config/duration.hpp"

#include <array>
#include <cstdint>
#include <limits>

namespace pgcourier::config {
namespace {

struct Unit {
  std::string_view suffix;
  std::int64_t millis;
};

// Largest first; also the order required in the text.
constexpr std::array<Unit, 5> kUnits{{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text == "0") return std::chrono::milliseconds{0};

  constexpr std::int64_t kMax = std::numeric_limits<std::chrono::milliseconds::rep>::max();
  std::int64_t total = 0;
  std::size_t next_unit = 0;  // index into kUnits of the smallest unit not yet allowed to be skipped
  std::size_t pos = 0;
  while (pos < text.size()) {
    // Number.
    if (!IsDigit(text[pos])) return std::nullopt;
    std::int64_t number = 0;
    while (pos < text.size() && IsDigit(text[pos])) {
      const int digit = text[pos] - '0';
      if (number > (kMax - digit) / 10) return std::nullopt;
      number = number * 10 + digit;
      ++pos;
    }
    // Unit: the whole run of letters.
    const std::size_t unit_start = pos;
    while (pos < text.size() && IsLetter(text[pos])) ++pos;
    const std::string_view suffix = text.substr(unit_start, pos - unit_start);
    if (suffix.empty()) return std::nullopt;  // bare number, or "1.5s"
    std::size_t index = next_unit;
    while (index < kUnits.size() && kUnits[index].suffix != suffix) ++index;
    if (index == kUnits.size()) return std::nullopt;  // unknown, repeated or out of order
    next_unit = index + 1;

    const std::int64_t factor = kUnits[index].millis;
    if (number > kMax / factor) return std::nullopt;
    const std::int64_t part = number * factor;
    if (total > kMax - part) return std::nullopt;
    total += part;
  }
  return std::chrono::milliseconds{total};
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  const std::int64_t value = duration.count();
  if (value == 0) return "0s";
  std::string out;
  // Work in unsigned so that the most negative value can be negated.
  auto rest = static_cast<std::uint64_t>(value);
  if (value < 0) {
    out += '-';
    rest = ~rest + 1;
  }
  for (const Unit& unit : kUnits) {
    const auto size = static_cast<std::uint64_t>(unit.millis);
    if (rest >= size) {
      out += std::to_string(rest / size);
      out += unit.suffix;
      rest %= size;
    }
  }
  return out;
}

}  // namespace pgcourier::config

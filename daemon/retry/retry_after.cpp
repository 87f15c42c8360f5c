// Retry-After parsing. All reads go through Cursor, which checks bounds
// before every access. Calendar math is Howard Hinnant's days_from_civil /
// civil_from_days (proleptic Gregorian, exact for all int64 inputs used here),
// so neither timegm, strptime nor the locale is involved.
//
// Overflow: HTTP-date years are at most 4 digits (RFC 850 years resolve to
// [-100, 10099] because now's year is clamped to [0, 9999] first), so a
// date's Unix time in ms stays within about +-3.2e14; comparisons with
// now_unix_ms are arranged so that no subtraction can overflow int64.
#include "retry/retry_after.hpp"

#include <algorithm>

#include <array>
#include <cstddef>

namespace pgcourier::retry {
namespace {

constexpr std::int64_t kMaxDelayMs = kMaxRetryAfter.count();
constexpr std::int64_t kMsPerSecond = 1000;
constexpr std::int64_t kSecondsPerDay = 86'400;
constexpr std::int64_t kMsPerDay = kSecondsPerDay * kMsPerSecond;

constexpr std::array<std::string_view, 7> kShortDays = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                       "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

// Bounds-checked reader over a string_view. Every method either consumes
// input and returns true, or returns false (the position is then unspecified;
// callers give up on the whole form).
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool AtEnd() const { return pos_ == text_.size(); }

  bool Literal(std::string_view expected) {
    if (text_.size() - pos_ < expected.size()) return false;
    if (text_.substr(pos_, expected.size()) != expected) return false;
    pos_ += expected.size();
    return true;
  }

  // Exactly `count` decimal digits.
  bool Digits(std::size_t count, int* out) {
    if (text_.size() - pos_ < count) return false;
    int value = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const char c = text_[pos_ + i];
      if (!IsDigit(c)) return false;
      value = value * 10 + (c - '0');
    }
    pos_ += count;
    *out = value;
    return true;
  }

  // One of `names` (exact case); *index receives its position in `names`.
  template <std::size_t N>
  bool OneOf(const std::array<std::string_view, N>& names, int* index) {
    for (std::size_t i = 0; i < N; ++i) {
      if (Literal(names[i])) {
        *index = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

struct DateTime {
  std::int64_t year = 0;
  int month = 0;  // 1..12
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
};

// Floor division for a positive divisor.
std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

bool IsLeapYear(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(std::int64_t year, int month) {
  constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && IsLeapYear(year)) return 29;
  return kDays[static_cast<std::size_t>(month - 1)];
}

// Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1..12).
std::int64_t DaysFromCivil(std::int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = FloorDiv(y, 400);
  const std::int64_t yoe = y - era * 400;                                  // [0, 399]
  const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365]
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          // [0, 146096]
  return era * 146097 + doe - 719468;
}

// Gregorian year containing day `days` since 1970-01-01.
std::int64_t YearFromDays(std::int64_t days) {
  const std::int64_t z = days + 719468;
  const std::int64_t era = FloorDiv(z, 146097);
  const std::int64_t doe = z - era * 146097;                                     // [0, 146096]
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);              // [0, 365]
  const std::int64_t mp = (5 * doy + 2) / 153;                                   // [0, 11], March-based
  return yoe + era * 400 + (mp >= 10 ? 1 : 0);
}

bool Valid(const DateTime& dt) {
  return dt.month >= 1 && dt.month <= 12 && dt.day >= 1 && dt.day <= DaysInMonth(dt.year, dt.month) &&
         dt.hour >= 0 && dt.hour <= 23 && dt.minute >= 0 && dt.minute <= 59 && dt.second >= 0 && dt.second <= 60;
}

// time-of-day = hour ":" minute ":" second (each 2DIGIT)
bool ParseTime(Cursor& in, DateTime* dt) {
  return in.Digits(2, &dt->hour) && in.Literal(":") && in.Digits(2, &dt->minute) && in.Literal(":") &&
         in.Digits(2, &dt->second);
}

bool ParseMonth(Cursor& in, DateTime* dt) {
  int index = 0;
  if (!in.OneOf(kMonths, &index)) return false;
  dt->month = index + 1;
  return true;
}

// IMF-fixdate = day-name "," SP 2DIGIT SP month SP 4DIGIT SP time-of-day SP "GMT"
bool ParseImfFixdate(std::string_view text, DateTime* dt) {
  Cursor in(text);
  int ignored = 0;
  int year = 0;
  if (!(in.OneOf(kShortDays, &ignored) && in.Literal(", ") && in.Digits(2, &dt->day) && in.Literal(" ") &&
        ParseMonth(in, dt) && in.Literal(" ") && in.Digits(4, &year) && in.Literal(" ") && ParseTime(in, dt) &&
        in.Literal(" GMT") && in.AtEnd())) {
    return false;
  }
  dt->year = year;
  return true;
}

// rfc850-date = day-name-l "," SP 2DIGIT "-" month "-" 2DIGIT SP time-of-day SP "GMT"
bool ParseRfc850(std::string_view text, std::int64_t now_year, DateTime* dt) {
  Cursor in(text);
  int ignored = 0;
  int yy = 0;
  if (!(in.OneOf(kLongDays, &ignored) && in.Literal(", ") && in.Digits(2, &dt->day) && in.Literal("-") &&
        ParseMonth(in, dt) && in.Literal("-") && in.Digits(2, &yy) && in.Literal(" ") && ParseTime(in, dt) &&
        in.Literal(" GMT") && in.AtEnd())) {
    return false;
  }
  // RFC 9110 section 5.6.7: a year that appears more than 50 years in the
  // future is the most recent past year with the same last two digits. So
  // the year is the one with these last two digits in the window
  // (now_year - 50, now_year + 50].
  std::int64_t year = FloorDiv(now_year, 100) * 100 + yy;
  if (year > now_year + 50) {
    year -= 100;
  } else if (year <= now_year - 50) {
    year += 100;
  }
  dt->year = year;
  return true;
}

// asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP 4DIGIT
bool ParseAsctime(std::string_view text, DateTime* dt) {
  Cursor in(text);
  int ignored = 0;
  int year = 0;
  if (!(in.OneOf(kShortDays, &ignored) && in.Literal(" ") && ParseMonth(in, dt) && in.Literal(" "))) return false;
  if (!(in.Literal(" ") ? in.Digits(1, &dt->day) : in.Digits(2, &dt->day))) return false;
  if (!(in.Literal(" ") && ParseTime(in, dt) && in.Literal(" ") && in.Digits(4, &year) && in.AtEnd())) return false;
  dt->year = year;
  return true;
}

// delay-seconds = 1*DIGIT; saturates at kMaxRetryAfter.
std::optional<std::chrono::milliseconds> ParseDelaySeconds(std::string_view text) {
  constexpr std::int64_t kMaxSeconds = kMaxDelayMs / kMsPerSecond;
  if (text.empty()) return std::nullopt;
  std::int64_t seconds = 0;
  for (const char c : text) {
    if (!IsDigit(c)) return std::nullopt;
    // Once past the cap, keep validating digits but stop accumulating.
    if (seconds <= kMaxSeconds) seconds = seconds * 10 + (c - '0');
  }
  return std::chrono::milliseconds{seconds <= kMaxSeconds ? seconds * kMsPerSecond : kMaxDelayMs};
}

std::optional<std::chrono::milliseconds> ParseHttpDate(std::string_view text, std::int64_t now_unix_ms) {
  // now's year, clamped to the range a 4-digit year can express so that the
  // RFC 850 pivot (and everything derived from it) stays small.
  std::int64_t now_year = YearFromDays(FloorDiv(now_unix_ms, kMsPerDay));
  if (now_year < 0) now_year = 0;
  if (now_year > 9999) now_year = 9999;

  DateTime dt;
  if (!ParseImfFixdate(text, &dt) && !ParseRfc850(text, now_year, &dt) && !ParseAsctime(text, &dt)) {
    return std::nullopt;
  }
  if (!Valid(dt)) return std::nullopt;

  const std::int64_t seconds =
      DaysFromCivil(dt.year, dt.month, dt.day) * kSecondsPerDay + std::int64_t{dt.hour} * 3600 +
      std::int64_t{dt.minute} * 60 + dt.second;
  const std::int64_t target_ms = seconds * kMsPerSecond;  // |target_ms| < 4e14
  if (now_unix_ms >= target_ms) return std::chrono::milliseconds{0};
  if (now_unix_ms < target_ms - kMaxDelayMs) return std::chrono::milliseconds{kMaxDelayMs};
  return std::chrono::milliseconds{target_ms - now_unix_ms};  // in (0, kMaxDelayMs]
}

}  // namespace

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value, std::int64_t now_unix_ms) noexcept {
  const std::string_view text = Trim(value);
  if (text.empty()) return std::nullopt;
  if (IsDigit(text.front())) return ParseDelaySeconds(text);
  return ParseHttpDate(text, now_unix_ms);
}

std::chrono::milliseconds HonourRetryAfter(std::chrono::milliseconds delay, std::string_view retry_after,
                                           std::int64_t now_unix_ms, std::chrono::milliseconds cap) noexcept {
  if (retry_after.empty()) return delay;
  const auto asked = ParseRetryAfter(retry_after, now_unix_ms);
  if (!asked) return delay;
  return std::min(std::max(delay, *asked), cap);
}

}  // namespace pgcourier::retry

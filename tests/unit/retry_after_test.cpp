// Tests for retry/retry_after: Retry-After parsing (delay-seconds and the
// three HTTP-date forms), validation, saturation and a no-crash fuzz loop.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "retry/retry_after.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::retry::kMaxRetryAfter;
using pgcourier::retry::ParseRetryAfter;
using Result = std::optional<std::chrono::milliseconds>;

// Unix times (seconds) checked against `date -u -d ... +%s`.
constexpr std::int64_t k1994Nov06_084937 = 784'111'777;  // Sun, 06 Nov 1994 08:49:37 GMT
constexpr std::int64_t k2024Feb29 = 1'709'164'800;       // Thu, 29 Feb 2024 00:00:00 GMT
constexpr std::int64_t k2026Jan01 = 1'767'225'600;       // Thu, 01 Jan 2026 00:00:00 GMT
constexpr std::int64_t k2000Feb29 = 951'782'400;         // Tue, 29 Feb 2000 00:00:00 GMT

constexpr std::int64_t Ms(std::int64_t seconds) { return seconds * 1000; }

// "now" one minute before the RFC 9110 example date.
constexpr std::int64_t kBeforeExample = Ms(k1994Nov06_084937 - 60);
constexpr std::int64_t kNow2026 = Ms(k2026Jan01);

Result Parse(std::string_view value, std::int64_t now = kNow2026) { return ParseRetryAfter(value, now); }

TEST_CASE("ParseRetryAfter: delay-seconds") {
  CHECK(Parse("120") == Result{120s});
  CHECK(Parse("0") == Result{0ms});
  CHECK(Parse(" 5 ") == Result{5s});
  CHECK(Parse("\t5\r\n") == Result{5s});
  CHECK(Parse("007") == Result{7s});
  CHECK(Parse("86400") == Result{24h});
  // The current time does not matter for delay-seconds.
  CHECK(Parse("3", std::numeric_limits<std::int64_t>::min()) == Result{3s});
  CHECK(Parse("3", std::numeric_limits<std::int64_t>::max()) == Result{3s});
}

TEST_CASE("ParseRetryAfter: invalid values are rejected") {
  for (const char* value : {"", " ", " \t\r\n", "-1", "+1", "1.5", "1e3", "abc", "12abc", "1 2", "0x10", "5s",
                            "\xEF\xBC\x95" /* fullwidth 5 */}) {
    CAPTURE(value);
    CHECK(Parse(value) == std::nullopt);
  }
  CHECK(Parse(std::string_view("1\0", 2)) == std::nullopt);
  CHECK(Parse(std::string_view("\0" "1", 2)) == std::nullopt);
}

TEST_CASE("ParseRetryAfter: huge delay-seconds saturate at the 10-year cap") {
  CHECK(kMaxRetryAfter == std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::years{10}));
  const std::int64_t cap_seconds = kMaxRetryAfter.count() / 1000;
  CHECK(Parse(std::to_string(cap_seconds - 1)) == Result{kMaxRetryAfter - 1s});
  CHECK(Parse(std::to_string(cap_seconds)) == Result{kMaxRetryAfter});
  CHECK(Parse(std::to_string(cap_seconds + 1)) == Result{kMaxRetryAfter});
  CHECK(Parse("99999999999999999999999") == Result{kMaxRetryAfter});
  CHECK(Parse("18446744073709551616") == Result{kMaxRetryAfter});  // 2^64
  CHECK(Parse("9223372036854775808") == Result{kMaxRetryAfter});   // 2^63
  CHECK(Parse(std::string(10000, '9')) == Result{kMaxRetryAfter});
  CHECK(Parse("0000000000000000000000000000000000000000042") == Result{42s});
  // Still validated after saturating.
  CHECK(Parse("99999999999999999999999x") == std::nullopt);
}

TEST_CASE("ParseRetryAfter: IMF-fixdate") {
  CHECK(Parse("Sun, 06 Nov 1994 08:49:37 GMT", kBeforeExample) == Result{60s});
  CHECK(Parse("  Sun, 06 Nov 1994 08:49:37 GMT\t", kBeforeExample) == Result{60s});
  // Sub-second now.
  CHECK(Parse("Sun, 06 Nov 1994 08:49:37 GMT", Ms(k1994Nov06_084937) - 250) == Result{250ms});
  CHECK(Parse("Thu, 01 Jan 2026 00:00:00 GMT", kNow2026 - Ms(3600)) == Result{1h});
  // The weekday need not match the date.
  CHECK(Parse("Mon, 06 Nov 1994 08:49:37 GMT", kBeforeExample) == Result{60s});
  // Leap second: 23:59:60 is the next day's 00:00:00.
  CHECK(Parse("Wed, 31 Dec 2025 23:59:60 GMT", kNow2026 - 1000) == Result{1s});
}

TEST_CASE("ParseRetryAfter: RFC 850 date") {
  CHECK(Parse("Sunday, 06-Nov-94 08:49:37 GMT", kBeforeExample) == Result{60s});
  CHECK(Parse("Thursday, 01-Jan-26 00:00:00 GMT", kNow2026 - Ms(90)) == Result{90s});
  CHECK(Parse("Tuesday, 29-Feb-00 00:00:00 GMT", Ms(k2000Feb29) - 1000) == Result{1s});
  for (const char* day : {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}) {
    CAPTURE(day);
    CHECK(Parse(std::string(day) + ", 06-Nov-94 08:49:37 GMT", kBeforeExample) == Result{60s});
  }
}

TEST_CASE("ParseRetryAfter: RFC 850 two-digit years (RFC 9110 section 5.6.7)") {
  // Now is 2026: "94" is 2094, more than 50 years ahead, so it means 1994.
  CHECK(Parse("Sunday, 06-Nov-94 08:49:37 GMT") == Result{0ms});
  // "76" -> 2076 is exactly 50 years ahead: kept in the future (capped).
  CHECK(Parse("Wednesday, 01-Jan-76 00:00:00 GMT") == Result{kMaxRetryAfter});
  // "77" -> 2077 is 51 years ahead: it means 1977.
  CHECK(Parse("Saturday, 01-Jan-77 00:00:00 GMT") == Result{0ms});
  // "27" -> 2027, one year ahead.
  CHECK(Parse("Friday, 01-Jan-27 00:00:00 GMT") == Result{std::chrono::hours{24 * 365}});
  // "00" -> 2000, in the past.
  CHECK(Parse("Saturday, 01-Jan-00 00:00:00 GMT") == Result{0ms});
  // In 1994, "94" is 1994 and "44" is 2044 (50 years ahead).
  CHECK(Parse("Sunday, 06-Nov-94 08:49:37 GMT", kBeforeExample) == Result{60s});
  CHECK(Parse("Friday, 01-Jan-44 00:00:00 GMT", kBeforeExample) == Result{kMaxRetryAfter});
  CHECK(Parse("Friday, 01-Jan-45 00:00:00 GMT", kBeforeExample) == Result{0ms});  // 1945
  CHECK(Parse("Friday, 01-Jan-95 00:00:00 GMT", kBeforeExample) == Result{4'806'683s});  // 1995-01-01
  // The leap-year check uses the resolved year: 29-Feb-00 is valid in 2026
  // (2000); in 1950, "00" is 2000 too (exactly 50 ahead); in 1949 it is 1900
  // (not a leap year).
  CHECK(Parse("Tuesday, 29-Feb-00 00:00:00 GMT").has_value());
  const std::int64_t k1950Jun01 = -618'105'600;  // date -u -d 1950-06-01 +%s
  const std::int64_t k1949Jun01 = -649'641'600;  // date -u -d 1949-06-01 +%s
  CHECK(Parse("Tuesday, 29-Feb-00 00:00:00 GMT", Ms(k1950Jun01)) == Result{kMaxRetryAfter});
  CHECK(Parse("Tuesday, 29-Feb-00 00:00:00 GMT", Ms(k1949Jun01)) == std::nullopt);
}

TEST_CASE("ParseRetryAfter: asctime date") {
  CHECK(Parse("Sun Nov  6 08:49:37 1994", kBeforeExample) == Result{60s});
  CHECK(Parse("Sun Nov 06 08:49:37 1994", kBeforeExample) == Result{60s});  // 2DIGIT day is also allowed
  CHECK(Parse("Thu Feb 29 00:00:00 2024", Ms(k2024Feb29) - 1000) == Result{1s});
  CHECK(Parse("Sun Nov 6 08:49:37 1994", kBeforeExample) == std::nullopt);    // single space + 1 digit
  CHECK(Parse("Sun Nov   6 08:49:37 1994", kBeforeExample) == std::nullopt);  // three spaces
  CHECK(Parse("Sun Nov  6 08:49:37 1994 GMT", kBeforeExample) == std::nullopt);
}

TEST_CASE("ParseRetryAfter: dates in the past give 0") {
  CHECK(Parse("Sun, 06 Nov 1994 08:49:37 GMT") == Result{0ms});
  CHECK(Parse("Sun Nov  6 08:49:37 1994") == Result{0ms});
  CHECK(Parse("Sunday, 06-Nov-94 08:49:37 GMT") == Result{0ms});
  // Exactly now, and one millisecond after.
  CHECK(Parse("Sun, 06 Nov 1994 08:49:37 GMT", Ms(k1994Nov06_084937)) == Result{0ms});
  CHECK(Parse("Sun, 06 Nov 1994 08:49:37 GMT", Ms(k1994Nov06_084937) + 1) == Result{0ms});
  CHECK(Parse("Sat, 01 Jan 0000 00:00:00 GMT") == Result{0ms});
}

TEST_CASE("ParseRetryAfter: far-future dates and extreme now saturate without overflow") {
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  CHECK(Parse("Fri, 31 Dec 9999 23:59:59 GMT") == Result{kMaxRetryAfter});
  CHECK(Parse("Fri, 31 Dec 9999 23:59:59 GMT", kMin) == Result{kMaxRetryAfter});
  CHECK(Parse("Sat, 01 Jan 0000 00:00:00 GMT", kMin) == Result{kMaxRetryAfter});
  CHECK(Parse("Fri, 31 Dec 9999 23:59:59 GMT", kMax) == Result{0ms});
  CHECK(Parse("Sunday, 06-Nov-94 08:49:37 GMT", kMin).has_value());
  CHECK(Parse("Sunday, 06-Nov-94 08:49:37 GMT", kMax) == Result{0ms});
  CHECK(Parse("Sun Nov  6 08:49:37 1994", kMin) == Result{kMaxRetryAfter});
  // Exactly at the cap and just below it.
  const std::int64_t target = Ms(k2026Jan01);
  CHECK(Parse("Thu, 01 Jan 2026 00:00:00 GMT", target - kMaxRetryAfter.count()) == Result{kMaxRetryAfter});
  CHECK(Parse("Thu, 01 Jan 2026 00:00:00 GMT", target - kMaxRetryAfter.count() + 1) ==
        Result{kMaxRetryAfter - 1ms});
  CHECK(Parse("Thu, 01 Jan 2026 00:00:00 GMT", target - kMaxRetryAfter.count() - 1) == Result{kMaxRetryAfter});
}

TEST_CASE("ParseRetryAfter: leap days") {
  CHECK(Parse("Thu, 29 Feb 2024 00:00:00 GMT", Ms(k2024Feb29) - 1000) == Result{1s});
  CHECK(Parse("Wed, 29 Feb 2023 00:00:00 GMT") == std::nullopt);
  CHECK(Parse("Tue, 29 Feb 2000 00:00:00 GMT").has_value());  // divisible by 400
  CHECK(Parse("Thu, 29 Feb 1900 00:00:00 GMT") == std::nullopt);  // divisible by 100
  CHECK(Parse("Thu Feb 29 00:00:00 2024").has_value());
  CHECK(Parse("Wed Feb 29 00:00:00 2023") == std::nullopt);
  CHECK(Parse("Thursday, 29-Feb-24 00:00:00 GMT").has_value());
  CHECK(Parse("Wednesday, 29-Feb-23 00:00:00 GMT") == std::nullopt);
}

TEST_CASE("ParseRetryAfter: invalid dates are rejected") {
  for (const char* value : {
           "Sun, 31 Feb 2026 08:49:37 GMT",   // no 31 Feb
           "Sun, 30 Feb 2024 08:49:37 GMT",   // no 30 Feb even in a leap year
           "Sun, 31 Apr 2026 08:49:37 GMT",   // April has 30 days
           "Sun, 31 Jun 2026 08:49:37 GMT",   // June has 30 days
           "Sun, 00 Nov 1994 08:49:37 GMT",   // day 0
           "Sun, 32 Jan 1994 08:49:37 GMT",   // day 32
           "Sun, 06 Nov 1994 24:00:00 GMT",   // hour 24
           "Sun, 06 Nov 1994 08:60:37 GMT",   // minute 60
           "Sun, 06 Nov 1994 08:49:61 GMT",   // second 61
           "Sun, 06 Xyz 1994 08:49:37 GMT",   // month name
           "Foo, 06 Nov 1994 08:49:37 GMT",   // weekday name
           "Sunday, 06 Nov 1994 08:49:37 GMT",  // long weekday in IMF-fixdate
           "Sun, 06-Nov-94 08:49:37 GMT",     // short weekday in RFC 850
           "Sun, 06 Nov 94 08:49:37 GMT",     // 2-digit year in IMF-fixdate
           "Sun, 6 Nov 1994 08:49:37 GMT",    // 1-digit day
           "Sun, 06 Nov 1994 8:49:37 GMT",    // 1-digit hour
           "Sun, 06 Nov 1994 08:49:37 UTC",   // zone must be GMT
           "Sun, 06 Nov 1994 08:49:37 gmt",
           "Sun, 06 Nov 1994 08:49:37",       // no zone
           "Sun, 06 Nov 1994 08:49:37 GMT x",  // trailing junk
           "Sun,  06 Nov 1994 08:49:37 GMT",  // double space
           "Sun 06 Nov 1994 08:49:37 GMT",    // missing comma
           "Sun, 06 Nov 19944 08:49:37 GMT",  // 5-digit year
           "Sun, 06 Nov 1994 08:49 GMT",      // no seconds
           "Sunday, 31-Feb-26 08:49:37 GMT",  // invalid RFC 850 date
           "Sunday, 06-Nov-1994 08:49:37 GMT",  // 4-digit year in RFC 850
           "Sun Feb 31 08:49:37 2026",        // invalid asctime date
           "Sun Nov  6 08:49:37 94",          // 2-digit year in asctime
           "Sun Nov  6 08:49:37",             // asctime without year
           "GMT",
           "Sun",
           ",",
       }) {
    CAPTURE(value);
    CHECK(Parse(value) == std::nullopt);
  }
}

TEST_CASE("ParseRetryAfter: names are case-sensitive (RFC 9110 exact case)") {
  CHECK(Parse("Sun, 06 Nov 1994 08:49:37 GMT", kBeforeExample).has_value());
  CHECK(Parse("Sun, 06 nov 1994 08:49:37 GMT", kBeforeExample) == std::nullopt);
  CHECK(Parse("Sun, 06 NOV 1994 08:49:37 GMT", kBeforeExample) == std::nullopt);
  CHECK(Parse("sun, 06 Nov 1994 08:49:37 GMT", kBeforeExample) == std::nullopt);
  CHECK(Parse("SUN, 06 Nov 1994 08:49:37 GMT", kBeforeExample) == std::nullopt);
  CHECK(Parse("sunday, 06-Nov-94 08:49:37 GMT", kBeforeExample) == std::nullopt);
  CHECK(Parse("Sunday, 06-nov-94 08:49:37 GMT", kBeforeExample) == std::nullopt);
  CHECK(Parse("Sun nov  6 08:49:37 1994", kBeforeExample) == std::nullopt);
}

TEST_CASE("ParseRetryAfter: every month and weekday name") {
  const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // The 1st of each month of 2026, as Unix seconds.
  const std::int64_t firsts[] = {1767225600, 1769904000, 1772323200, 1775001600, 1777593600, 1780272000,
                                 1782864000, 1785542400, 1788220800, 1790812800, 1793491200, 1796083200};
  for (int i = 0; i < 12; ++i) {
    CAPTURE(months[i]);
    const std::string value = std::string("Thu, 01 ") + months[i] + " 2026 00:00:00 GMT";
    CHECK(Parse(value, Ms(firsts[i]) - 1000) == Result{1s});
  }
  for (const char* day : {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}) {
    CAPTURE(day);
    CHECK(Parse(std::string(day) + ", 06 Nov 1994 08:49:37 GMT", kBeforeExample) == Result{60s});
    CHECK(Parse(std::string(day) + " Nov  6 08:49:37 1994", kBeforeExample) == Result{60s});
  }
}

// Parses a copy of `value` in a heap buffer of exactly value.size() bytes, so
// that AddressSanitizer reports any read past the end.
Result ParseExact(std::string_view value, std::int64_t now) {
  auto buffer = std::make_unique<char[]>(value.size());
  if (!value.empty()) std::memcpy(buffer.get(), value.data(), value.size());
  return ParseRetryAfter(std::string_view(buffer.get(), value.size()), now);
}

bool InRange(const Result& result) { return !result || (*result >= 0ms && *result <= kMaxRetryAfter); }

TEST_CASE("ParseRetryAfter: every prefix of valid values parses without out-of-bounds reads") {
  for (std::string_view valid : {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                                 "Sun Nov  6 08:49:37 1994", "Sun Nov 16 08:49:37 1994", " 120 "}) {
    for (std::size_t n = 0; n <= valid.size(); ++n) {
      for (std::size_t start = 0; start <= n; ++start) {
        const Result result = ParseExact(valid.substr(start, n - start), kBeforeExample);
        CHECK(InRange(result));
      }
    }
  }
}

TEST_CASE("ParseRetryAfter: random inputs never crash and stay in range") {
  std::mt19937_64 rng(0x5eed'cafe);
  const std::string_view alphabet = "0123456789 ,-:\t\r\nSunMonTueWedThuFriSatJanFebMarAprMayJunJulAugSepOctNovDecGMTday";
  const std::vector<std::string> seeds = {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                                          "Sun Nov  6 08:49:37 1994", "120", "99999999999999999999999"};
  const std::int64_t nows[] = {std::numeric_limits<std::int64_t>::min(), -1, 0, kBeforeExample, kNow2026,
                               std::numeric_limits<std::int64_t>::max()};
  int parsed = 0;
  for (int iteration = 0; iteration < 100'000; ++iteration) {
    std::string value;
    switch (rng() % 3) {
      case 0: {  // arbitrary bytes
        value.resize(rng() % 40);
        for (char& c : value) c = static_cast<char>(rng() & 0xFF);
        break;
      }
      case 1: {  // characters that occur in valid values
        value.resize(rng() % 40);
        for (char& c : value) c = alphabet[rng() % alphabet.size()];
        break;
      }
      default: {  // mutated valid values
        value = seeds[rng() % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits && !value.empty(); ++e) {
          const std::size_t pos = rng() % value.size();
          switch (rng() % 4) {
            case 0: value[pos] = static_cast<char>(rng() & 0xFF); break;
            case 1: value[pos] = static_cast<char>('0' + rng() % 10); break;
            case 2: value.erase(pos, 1); break;
            default: value.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
          }
        }
        break;
      }
    }
    const std::int64_t now = nows[rng() % std::size(nows)];
    const Result result = ParseExact(value, now);
    if (result) ++parsed;
    if (!InRange(result)) {
      CAPTURE(value);
      CAPTURE(now);
      FAIL("result out of range");
    }
  }
  CHECK(parsed > 0);  // the mutations do produce some valid values
}

}  // namespace

// Parsing of the HTTP Retry-After response header (RFC 9110 section 10.2.3).
// Pure: no I/O, no clock (the current time is passed in), no global state.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pgcourier::retry {

// Upper bound of every delay returned by ParseRetryAfter: 10 Gregorian years
// (10 * 365.2425 days, the same length as std::chrono::years{10}).
inline constexpr std::chrono::milliseconds kMaxRetryAfter{315'569'520'000};

// Parses an HTTP Retry-After header value: either delay-seconds (a
// non-negative decimal integer, leading zeros allowed, no sign) or an
// HTTP-date in one of the three forms
//   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
//   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"
//   asctime      "Sun Nov  6 08:49:37 1994"   (day also as "06")
// Returns the delay from now_unix_ms (0 if the date is now or in the past),
// or nullopt when the value is empty or invalid.
//
// - Surrounding whitespace (SP, HTAB, CR, LF) is ignored; inside the value
//   the grammar is strict (single spaces, exact field widths).
// - Day and month names and "GMT" are case-sensitive, as in RFC 9110
//   ("nov" or "sun" is rejected). The weekday must be a real name but need
//   not match the date.
// - Fields are validated: day 1..days in that month (leap years included),
//   hour 0..23, minute 0..59, second 0..60 (a leap second counts as the next
//   minute's :00).
// - RFC 850 two-digit years (RFC 9110 section 5.6.7): the year with those
//   last two digits in (Y - 50, Y + 50], where Y is now's UTC year; a year
//   more than 50 years ahead is thus taken as the previous century's.
// - Huge values saturate: any delay (including an arbitrarily long digit
//   string such as "99999999999999999999999") is capped at kMaxRetryAfter
//   rather than rejected.
// Never throws, never reads outside `value`.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value, std::int64_t now_unix_ms) noexcept;

// The delay of a rate-limited retry: when the receiver said when to come back
// (a valid Retry-After), not earlier than that, but never later than `cap`
// (the policy's backoff cap); otherwise `delay` as it is. Deliveries and runs
// use the same rule.
std::chrono::milliseconds HonourRetryAfter(std::chrono::milliseconds delay, std::string_view retry_after,
                                           std::int64_t now_unix_ms, std::chrono::milliseconds cap) noexcept;

}  // namespace pgcourier::retry

// Tests for retry/: classification, backoff, decisions and text sanitising.
#include <doctest/doctest.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "retry/classify.hpp"
#include "retry/text.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::model::Backoff;
using pgcourier::model::DeliveryStatus;
using pgcourier::model::FailureClass;
using pgcourier::model::HttpResult;
using pgcourier::model::Millis;
using pgcourier::model::Policy;
using pgcourier::model::TransportError;
using pgcourier::retry::BackoffDelay;
using pgcourier::retry::Classify;
using pgcourier::retry::Decide;
using pgcourier::retry::RedactPath;
using pgcourier::retry::RedactUrls;
using pgcourier::retry::SafeSummary;
using pgcourier::retry::SanitizeUtf8;
using pgcourier::retry::Verdict;

HttpResult Status(int status) {
  HttpResult result;
  result.status_code = status;
  return result;
}

HttpResult Transport(TransportError error, std::string message) {
  HttpResult result;
  result.transport_error = error;
  result.error_message = std::move(message);
  return result;
}

struct Expected {
  int status;
  bool success;
  FailureClass failure_class;
  bool retryable;
  const char* outcome;
  const char* summary;
};

void CheckVerdict(const Verdict& verdict, const Expected& expected) {
  CAPTURE(expected.status);
  CHECK(verdict.success == expected.success);
  CHECK(verdict.failure_class == expected.failure_class);
  CHECK(verdict.retryable == expected.retryable);
  CHECK(verdict.outcome == expected.outcome);
  CHECK(verdict.summary == expected.summary);
}

// Reference check: true when `text` is well-formed UTF-8 without NUL bytes.
bool IsCleanUtf8(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0) return false;
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      length = 2, code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3, code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4, code = c & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    const std::uint32_t minimum = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
    if (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

const std::string kFffd = "\xEF\xBF\xBD";

std::string Repeat(const std::string& piece, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += piece;
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Classify

TEST_CASE("Classify maps HTTP statuses with the default policy") {
  const Policy policy;
  const std::vector<Expected> table{
      {200, true, FailureClass::kNone, false, "delivered", "HTTP 200"},
      {204, true, FailureClass::kNone, false, "delivered", "HTTP 204"},
      {400, false, FailureClass::kValidation, false, "http_error", "HTTP 400"},
      {401, false, FailureClass::kAuth, false, "http_error", "HTTP 401"},
      {403, false, FailureClass::kAuth, false, "http_error", "HTTP 403"},
      {404, false, FailureClass::kValidation, false, "http_error", "HTTP 404"},
      {408, false, FailureClass::kTransient, true, "http_error", "HTTP 408"},
      {409, false, FailureClass::kValidation, false, "http_error", "HTTP 409"},
      {410, false, FailureClass::kValidation, false, "http_error", "HTTP 410"},
      {422, false, FailureClass::kValidation, false, "http_error", "HTTP 422"},
      {425, false, FailureClass::kTransient, true, "http_error", "HTTP 425"},
      {429, false, FailureClass::kRateLimited, true, "http_error", "HTTP 429"},
      {500, false, FailureClass::kTransient, true, "http_error", "HTTP 500"},
      {503, false, FailureClass::kTransient, true, "http_error", "HTTP 503"},
      {599, false, FailureClass::kTransient, true, "http_error", "HTTP 599"},
      {101, false, FailureClass::kValidation, false, "http_error", "HTTP 101"},
  };
  for (const Expected& expected : table) CheckVerdict(Classify(Status(expected.status), policy), expected);
}

TEST_CASE("Classify reports redirects as not followed, naming the Location") {
  const Policy policy;
  HttpResult moved = Status(301);
  moved.location = "https://x";
  CheckVerdict(Classify(moved, policy),
               {301, false, FailureClass::kValidation, false, "redirect", "HTTP 301 redirect to https://x not followed"});
  CheckVerdict(Classify(Status(302), policy),
               {302, false, FailureClass::kValidation, false, "redirect", "HTTP 302 redirect not followed"});
  // Listing a 3xx does not make redirects retryable.
  Policy listed;
  listed.retryable_statuses = {{300, 399}};
  CHECK_FALSE(Classify(Status(307), listed).retryable);
}

TEST_CASE("Classify mentions Retry-After in the summary") {
  HttpResult result = Status(429);
  result.retry_after = "30";
  CHECK(Classify(result, Policy{}).summary == "HTTP 429 (Retry-After: 30)");
}

TEST_CASE("Classify maps each transport error to its outcome, transient and retryable") {
  const Policy policy;
  const std::vector<std::pair<TransportError, const char*>> errors{
      {TransportError::kTimeout, "timeout"},          {TransportError::kConnect, "connection_error"},
      {TransportError::kDns, "dns_error"},            {TransportError::kTls, "tls_error"},
      {TransportError::kProtocol, "protocol_error"},  {TransportError::kBodyTooLarge, "body_too_large"},
      {TransportError::kAborted, "aborted"},          {TransportError::kOther, "transport_error"},
  };
  for (const auto& [error, outcome] : errors) {
    CAPTURE(outcome);
    const Verdict verdict = Classify(Transport(error, "curl says no"), policy);
    CHECK_FALSE(verdict.success);
    CHECK(verdict.failure_class == FailureClass::kTransient);
    CHECK(verdict.retryable);
    CHECK(verdict.outcome == outcome);
    CHECK(verdict.summary == "curl says no");
    // Without a message the outcome is the summary.
    CHECK(Classify(Transport(error, ""), policy).summary == outcome);
  }
  // Neither status nor error: treated as a generic transport failure.
  const Verdict nothing = Classify(HttpResult{}, policy);
  CHECK(nothing.outcome == "transport_error");
  CHECK(nothing.retryable);
}

TEST_CASE("A received status decides only for a complete response (or one we cut short)") {
  const Policy policy;
  HttpResult big = Transport(TransportError::kBodyTooLarge, "body exceeded limit");
  big.status_code = 200;
  CHECK(Classify(big, policy).success);
  CHECK(Classify(big, policy).outcome == "delivered");
  // A 200 whose body then stalled or broke off was not a complete answer: retried, never "delivered".
  HttpResult stalled = Transport(TransportError::kTimeout, "timed out reading body");
  stalled.status_code = 200;
  CHECK_FALSE(Classify(stalled, policy).success);
  CHECK(Classify(stalled, policy).outcome == "timeout");
  CHECK(Classify(stalled, policy).retryable);
  HttpResult cut = Transport(TransportError::kProtocol, "transfer closed with 900 bytes remaining");
  cut.status_code = 200;
  CHECK(Classify(cut, policy).outcome == "protocol_error");
  CHECK(Classify(cut, policy).retryable);
  cut.status_code = 404;
  CHECK(Classify(cut, policy).retryable);
}

TEST_CASE("Classify follows a custom retryable_statuses list") {
  Policy policy;
  policy.retryable_statuses = {{409, 409}};
  CheckVerdict(Classify(Status(409), policy), {409, false, FailureClass::kTransient, true, "http_error", "HTTP 409"});
  CheckVerdict(Classify(Status(503), policy),
               {503, false, FailureClass::kValidation, false, "http_error", "HTTP 503"});
  // 429 stays rate_limited but is only retried when listed.
  CheckVerdict(Classify(Status(429), policy),
               {429, false, FailureClass::kRateLimited, false, "http_error", "HTTP 429"});
  // 401/403 stay auth failures; listing them makes them retryable.
  policy.retryable_statuses = {{401, 401}};
  CheckVerdict(Classify(Status(401), policy), {401, false, FailureClass::kAuth, true, "http_error", "HTTP 401"});
  CHECK_FALSE(Classify(Status(403), policy).retryable);
  // Transport errors do not depend on the list.
  policy.retryable_statuses.clear();
  CHECK(Classify(Transport(TransportError::kTimeout, "t"), policy).retryable);
}

// ---------------------------------------------------------------------------
// BackoffDelay

TEST_CASE("BackoffDelay grows by factor with jitter bounds at unit_random 0, 0.5 and 0.999") {
  const Backoff backoff;  // base 5s, factor 2, cap 1h, jitter 0.2
  CHECK(BackoffDelay(backoff, 1, 0.0) == 4000ms);
  CHECK(BackoffDelay(backoff, 1, 0.5) == 5000ms);
  CHECK(BackoffDelay(backoff, 1, 0.999) == 5998ms);
  CHECK(BackoffDelay(backoff, 2, 0.0) == 8000ms);
  CHECK(BackoffDelay(backoff, 2, 0.5) == 10000ms);
  CHECK(BackoffDelay(backoff, 2, 0.999) == 11996ms);
  CHECK(BackoffDelay(backoff, 3, 0.0) == 16000ms);
  CHECK(BackoffDelay(backoff, 3, 0.5) == 20000ms);
  CHECK(BackoffDelay(backoff, 3, 0.999) == 23992ms);
  CHECK(BackoffDelay(backoff, 10, 0.0) == 2048000ms);
  CHECK(BackoffDelay(backoff, 10, 0.5) == 2560000ms);
  CHECK(BackoffDelay(backoff, 10, 0.999) == 3070976ms);
}

TEST_CASE("BackoffDelay never exceeds cap, jitter included") {
  Backoff backoff;
  backoff.cap = 3000000ms;
  CHECK(BackoffDelay(backoff, 10, 0.999) == 3000000ms);  // 3,070,976 before the cap
  CHECK(BackoffDelay(backoff, 10, 0.0) == 2048000ms);    // below the cap: jitter kept
  CHECK(BackoffDelay(backoff, 11, 0.0) == 2400000ms);    // 5,120,000 capped first, then * 0.8
  Backoff constant;
  constant.base = 1000ms;
  constant.factor = 1.0;
  constant.cap = 1000ms;
  constant.jitter = 0.5;
  CHECK(BackoffDelay(constant, 5, 0.0) == 500ms);
  CHECK(BackoffDelay(constant, 5, 0.5) == 1000ms);
  CHECK(BackoffDelay(constant, 5, 0.999) == 1000ms);
}

TEST_CASE("BackoffDelay uses an explicit schedule, repeating its last entry") {
  Backoff backoff;
  backoff.schedule = {10s, 1min, 5min};
  backoff.jitter = 0;
  CHECK(BackoffDelay(backoff, 1, 0.3) == 10s);
  CHECK(BackoffDelay(backoff, 2, 0.3) == 1min);
  CHECK(BackoffDelay(backoff, 3, 0.3) == 5min);
  CHECK(BackoffDelay(backoff, 4, 0.3) == 5min);
  CHECK(BackoffDelay(backoff, INT_MAX, 0.3) == 5min);
  backoff.jitter = 0.1;
  CHECK(BackoffDelay(backoff, 2, 0.0) == 54s);
  CHECK(BackoffDelay(backoff, 2, 0.5) == 60s);
  backoff.cap = 2min;
  CHECK(BackoffDelay(backoff, 3, 0.0) == 108s);   // 5min capped to 2min, then * 0.9
  CHECK(BackoffDelay(backoff, 3, 0.999) == 2min);
}

TEST_CASE("BackoffDelay saturates at cap for huge attempt numbers without overflow") {
  Backoff backoff;  // cap 1h
  // At the cap, jitter still spreads retries below it: [0.8h, 1h] with jitter 0.2.
  CHECK(BackoffDelay(backoff, 10000, 0.0) == 48min);
  CHECK(BackoffDelay(backoff, 10000, 0.25) == 54min);
  CHECK(BackoffDelay(backoff, 10000, 0.5) == 1h);
  CHECK(BackoffDelay(backoff, 10000, 0.999) == 1h);
  CHECK(BackoffDelay(backoff, INT_MAX, 0.5) == 1h);
  backoff.factor = 10.0;
  CHECK(BackoffDelay(backoff, 1000, 0.5) == 1h);  // 10^999 overflows double
  backoff.cap = Millis::max();
  const Millis huge = BackoffDelay(backoff, 1000, 0.999);
  CHECK(huge > 0ms);
  CHECK(huge <= Millis::max());
  // jitter 1 with unit_random 0 multiplies by 0, even for an infinite raw delay.
  backoff.jitter = 1.0;
  CHECK(BackoffDelay(backoff, 1000, 0.0) == 0ms);
}

TEST_CASE("BackoffDelay tolerates out-of-contract inputs") {
  const Backoff backoff;
  CHECK(BackoffDelay(backoff, 0, 0.5) == 5000ms);   // attempt < 1 treated as 1
  CHECK(BackoffDelay(backoff, -7, 0.5) == 5000ms);
  CHECK(BackoffDelay(backoff, 1, std::nan("")) == 4000ms);  // NaN treated as 0
  CHECK(BackoffDelay(backoff, 1, -3.0) == 4000ms);
  CHECK(BackoffDelay(backoff, 1, 7.0) == 6000ms);  // clamped to 1
  Backoff broken;
  broken.cap = -5ms;
  CHECK(BackoffDelay(broken, 1, 0.5) == 0ms);
  broken = Backoff{};
  broken.factor = std::numeric_limits<double>::infinity();
  CHECK(BackoffDelay(broken, 3, 0.5) == 5000ms);  // non-finite factor treated as 1
}

// ---------------------------------------------------------------------------
// Decide

TEST_CASE("Decide: success is delivered") {
  const Policy policy;
  const auto next = Decide(Classify(Status(200), policy), 1, policy, 0.5);
  CHECK(next.status == DeliveryStatus::kDelivered);
  CHECK(next.delay == 0ms);
}

TEST_CASE("Decide: a retryable failure before the last attempt schedules a retry with backoff") {
  const Policy policy;  // 8 attempts
  const Verdict verdict = Classify(Status(503), policy);
  auto next = Decide(verdict, 1, policy, 0.5);
  CHECK(next.status == DeliveryStatus::kRetryScheduled);
  CHECK(next.delay == 5000ms);
  next = Decide(verdict, 7, policy, 0.0);
  CHECK(next.status == DeliveryStatus::kRetryScheduled);
  CHECK(next.delay == BackoffDelay(policy.backoff, 7, 0.0));
}

TEST_CASE("Decide: a retryable failure on the last attempt is dead-lettered") {
  Policy policy;
  const Verdict verdict = Classify(Transport(TransportError::kTimeout, "timeout"), policy);
  CHECK(Decide(verdict, 8, policy, 0.5).status == DeliveryStatus::kDeadLettered);
  CHECK(Decide(verdict, 9, policy, 0.5).status == DeliveryStatus::kDeadLettered);
  policy.max_attempts = 1;
  CHECK(Decide(verdict, 1, policy, 0.5).status == DeliveryStatus::kDeadLettered);
}

TEST_CASE("Decide: a non-retryable failure fails at once") {
  const Policy policy;
  for (int status : {301, 400, 401, 404, 422}) {
    CAPTURE(status);
    const auto next = Decide(Classify(Status(status), policy), 1, policy, 0.5);
    CHECK(next.status == DeliveryStatus::kFailed);
    CHECK(next.delay == 0ms);
  }
}

// ---------------------------------------------------------------------------
// SanitizeUtf8

TEST_CASE("SanitizeUtf8 keeps valid text, including 4-byte characters and U+10FFFF") {
  const std::string text = "plain ASCII, h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E \xF4\x8F\xBF\xBF \xEF\xBF\xBD\n\t";
  CHECK(SanitizeUtf8(text, 1000) == text);
  CHECK(SanitizeUtf8("", 10).empty());
}

TEST_CASE("SanitizeUtf8 replaces NUL and invalid sequences with U+FFFD") {
  CHECK(SanitizeUtf8(std::string("a\0b", 3), 100) == "a" + kFffd + "b");
  CHECK(SanitizeUtf8("\xFF", 100) == kFffd);
  CHECK(SanitizeUtf8("\x80\xBF", 100) == kFffd + kFffd);  // stray continuation bytes
  CHECK(SanitizeUtf8("\xF5\x80\x80\x80", 100) == Repeat(kFffd, 4));
}

TEST_CASE("SanitizeUtf8 rejects overlong encodings") {
  CHECK(SanitizeUtf8("\xC0\xAF", 100) == kFffd + kFffd);          // '/' in 2 bytes
  CHECK(SanitizeUtf8("\xC1\xBF", 100) == kFffd + kFffd);
  CHECK(SanitizeUtf8("\xE0\x80\xAF", 100) == Repeat(kFffd, 3));   // '/' in 3 bytes
  CHECK(SanitizeUtf8("\xE0\x9F\xBF", 100) == Repeat(kFffd, 3));
  CHECK(SanitizeUtf8("\xF0\x80\x80\xAF", 100) == Repeat(kFffd, 4));  // '/' in 4 bytes
  CHECK(SanitizeUtf8("\xF0\x8F\xBF\xBF", 100) == Repeat(kFffd, 4));
  CHECK(SanitizeUtf8("\xC0\x80", 100) == kFffd + kFffd);          // "modified UTF-8" NUL
  // The smallest well-formed forms pass.
  CHECK(SanitizeUtf8("\xC2\x80\xE0\xA0\x80\xF0\x90\x80\x80", 100) == "\xC2\x80\xE0\xA0\x80\xF0\x90\x80\x80");
}

TEST_CASE("SanitizeUtf8 rejects surrogates and code points above U+10FFFF") {
  CHECK(SanitizeUtf8("\xED\xA0\x80", 100) == Repeat(kFffd, 3));  // U+D800
  CHECK(SanitizeUtf8("\xED\xBF\xBF", 100) == Repeat(kFffd, 3));  // U+DFFF
  CHECK(SanitizeUtf8("\xED\x9F\xBF", 100) == "\xED\x9F\xBF");    // U+D7FF is fine
  CHECK(SanitizeUtf8("\xF4\x90\x80\x80", 100) == Repeat(kFffd, 4));
}

TEST_CASE("SanitizeUtf8 replaces truncated sequences by one U+FFFD per maximal prefix") {
  CHECK(SanitizeUtf8("\xE2\x82", 100) == kFffd);                  // cut at the end
  CHECK(SanitizeUtf8("\xF0\x9F\x98", 100) == kFffd);
  CHECK(SanitizeUtf8("x\xE2\x82" "A", 100) == "x" + kFffd + "A");  // cut by an ASCII byte
  CHECK(SanitizeUtf8("\xE2\x82\xE2\x82\xAC", 100) == kFffd + "\xE2\x82\xAC");
  CHECK(SanitizeUtf8("\xC3", 100) == kFffd);
}

TEST_CASE("SanitizeUtf8 truncates to max_bytes without splitting a character") {
  CHECK(SanitizeUtf8("hello", 3) == "hel");
  CHECK(SanitizeUtf8("a\xC3\xA9", 2) == "a");
  CHECK(SanitizeUtf8("a\xC3\xA9", 3) == "a\xC3\xA9");
  CHECK(SanitizeUtf8("\xE2\x82\xAC", 2).empty());
  CHECK(SanitizeUtf8("\xF0\x9D\x84\x9E", 3).empty());
  CHECK(SanitizeUtf8("\xFF", 2).empty());  // the 3-byte replacement does not fit
  CHECK(SanitizeUtf8("ab\xFF", 4) == "ab");
  CHECK(SanitizeUtf8("anything", 0).empty());
}

TEST_CASE("SanitizeUtf8 output is always clean UTF-8 within the limit (random bytes)") {
  std::mt19937 rng(12345);  // fixed seed: deterministic
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 64);
  for (int round = 0; round < 5000; ++round) {
    std::string input;
    const int size = length(rng);
    for (int i = 0; i < size; ++i) {
      // Bias towards bytes that start or continue multi-byte sequences.
      const int b = byte(rng);
      input += static_cast<char>(b < 128 ? 0x80 + (b % 0x80) : b);
    }
    const std::size_t max = static_cast<std::size_t>(length(rng));
    const std::string out = SanitizeUtf8(input, max);
    CAPTURE(round);
    REQUIRE(out.size() <= max);
    REQUIRE(IsCleanUtf8(out));
    REQUIRE(SanitizeUtf8(out, max) == out);  // idempotent
  }
}

// ---------------------------------------------------------------------------
// RedactUrls / SafeSummary

TEST_CASE("RedactUrls removes credentials, query string and fragment") {
  CHECK(RedactUrls("https://user:pass@host/p?token=abc#f") == "https://***@host/p?***");
  CHECK(RedactUrls("http://user@host:8080/a/b") == "http://***@host:8080/a/b");
  CHECK(RedactUrls("https://host/p#frag") == "https://host/p?***");
  CHECK(RedactUrls("https://host?x=1") == "https://host?***");
  CHECK(RedactUrls("https://u:p@host") == "https://***@host");
  CHECK(RedactUrls("https://u:p@ss@host/x") == "https://***@host/x");  // last '@' ends the credentials
}

TEST_CASE("RedactPath hides a run path's query string and fragment, keeps the path") {
  CHECK(RedactPath("/2010-04-01/Messages.json?token=sk_live_1") == "/2010-04-01/Messages.json?***");
  CHECK(RedactPath("/v1/send#frag") == "/v1/send?***");
  CHECK(RedactPath("/v1/send") == "/v1/send");
  CHECK(RedactPath("") == "");
}

TEST_CASE("RedactUrls leaves text without credentials or query alone") {
  CHECK(RedactUrls("") == "");
  CHECK(RedactUrls("no urls here: a@b.c, ftp://u:p@h/?x") == "no urls here: a@b.c, ftp://u:p@h/?x");
  CHECK(RedactUrls("Failed to connect to example.com port 443") == "Failed to connect to example.com port 443");
  CHECK(RedactUrls("see https://example.com/hooks/1 now") == "see https://example.com/hooks/1 now");
  CHECK(RedactUrls("https://mastodon.example/@alice") == "https://mastodon.example/@alice");
  CHECK(RedactUrls("https://") == "https://");
}

TEST_CASE("RedactUrls stops a URL at whitespace, quotes, '<' and '>'") {
  CHECK(RedactUrls("GET https://h/p?a=1 failed") == "GET https://h/p?*** failed");
  CHECK(RedactUrls("url=\"https://u:p@h/x?k=v\" next") == "url=\"https://***@h/x?***\" next");
  CHECK(RedactUrls("'http://h?s=1'") == "'http://h?***'");
  CHECK(RedactUrls("<https://u:p@h/?q>text") == "<https://***@h/?***>text");
  CHECK(RedactUrls("https://h/?a\tb https://h2/?c\nd") == "https://h/?***\tb https://h2/?***\nd");
}

TEST_CASE("RedactUrls handles several URLs and any scheme case") {
  CHECK(RedactUrls("a https://u:p@one/?x b HTTP://U:P@TWO/#y c") == "a https://***@one/?*** b HTTP://***@TWO/?*** c");
  CHECK(RedactUrls("HtTpS://u:p@h") == "HtTpS://***@h");
}

TEST_CASE("SafeSummary redacts, sanitises and bounds the text") {
  CHECK(SafeSummary("Could not reach https://u:p@h/x?token=secret\xFF") == "Could not reach https://***@h/x?***");
  CHECK(SafeSummary(std::string("a\0b", 3)) == "a" + kFffd + "b");
  const std::string long_text(2000, 'x');
  CHECK(SafeSummary(long_text).size() == 512);
  CHECK(SafeSummary(long_text, 10) == std::string(10, 'x'));
  // The secret never survives truncation.
  const std::string summary = SafeSummary(std::string(500, 'y') + " https://h/p?token=abcdefghijklmnop");
  CHECK(summary.find("token") == std::string::npos);
  CHECK(summary.size() <= 512);
}

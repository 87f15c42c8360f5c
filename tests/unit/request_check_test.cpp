#include <doctest/doctest.h>

#include <string>

#include "http/request_check.hpp"
#include "model/policy.hpp"
#include "retry/classify.hpp"

using pgcourier::http::HeaderLineProblem;
using pgcourier::http::IsSafeHeaderValue;
using pgcourier::http::RequestProblem;

TEST_CASE("header lines with CR, LF, NUL or DEL in the value are refused, naming the header only") {
  CHECK_FALSE(HeaderLineProblem("webhook-id: evt_0195a3f1c2d4e5f60718293a4b5c6d7e").has_value());
  CHECK_FALSE(HeaderLineProblem("Expect:").has_value());
  CHECK_FALSE(HeaderLineProblem("X-Tabbed: a\tb").has_value());
  CHECK_FALSE(HeaderLineProblem("Authorization: Bearer tok.en/+==").has_value());
  for (const std::string& bad : {std::string("webhook-id: a\r\nX-Injected: 1"), std::string("webhook-id: a\nb"),
                                std::string("webhook-id: a\rb"), std::string("webhook-id: a\0b", 15),
                                std::string("webhook-id: a\x7f"), std::string("webhook-id: a\x01")}) {
    CAPTURE(bad);
    const auto problem = HeaderLineProblem(bad);
    REQUIRE(problem.has_value());
    CHECK(problem->find("webhook-id") != std::string::npos);
    CHECK(problem->find("X-Injected") == std::string::npos);
  }
  const auto secret = HeaderLineProblem("Authorization: Bearer s3cret\r\n");
  REQUIRE(secret.has_value());
  CHECK(secret->find("s3cret") == std::string::npos);
}

TEST_CASE("header names must be RFC 9110 tokens") {
  CHECK(HeaderLineProblem("Bad Name: x").has_value());
  CHECK(HeaderLineProblem("Bad\r\nName: x").has_value());
  CHECK(HeaderLineProblem(": x").has_value());
  CHECK(HeaderLineProblem("no colon at all").has_value());
  CHECK_FALSE(HeaderLineProblem("X-Custom_Header.v1~: x").has_value());
}

TEST_CASE("a URL with control characters or spaces is refused") {
  CHECK_FALSE(RequestProblem("https://hooks.example.com/in?a=b", {}).has_value());
  CHECK(RequestProblem("https://hooks.example.com/in\r\nX: y", {}).has_value());
  CHECK(RequestProblem("https://hooks.example.com/a b", {}).has_value());
  CHECK(RequestProblem("https://ok.example/", {"good: 1", "bad: \n"}).has_value());
}

TEST_CASE("values for headers: no control characters but tab") {
  CHECK(IsSafeHeaderValue("pgcourier/0.1 (+https://example.com)"));
  CHECK(IsSafeHeaderValue("a\tb"));
  CHECK_FALSE(IsSafeHeaderValue("a\r\nb"));
  CHECK_FALSE(IsSafeHeaderValue(std::string("a\0b", 3)));
}

TEST_CASE("a request refused as invalid is poison: failed, never retried") {
  pgcourier::model::HttpResult r;
  r.transport_error = pgcourier::model::TransportError::kInvalidRequest;
  r.error_message = "request refused before sending: the value of header 'webhook-id' contains a control character";
  const pgcourier::model::Policy policy;
  const auto verdict = pgcourier::retry::Classify(r, policy);
  CHECK_FALSE(verdict.success);
  CHECK_FALSE(verdict.retryable);
  CHECK(verdict.failure_class == pgcourier::model::FailureClass::kPoison);
  CHECK(verdict.outcome == "invalid_request");
}

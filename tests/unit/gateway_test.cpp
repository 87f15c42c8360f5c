// pgcourier-gateway's pure parts: the ingress signature checks (published
// vectors and forgeries), the per-key token bucket (injected clock), and
// form/cookie parsing.
#include <doctest/doctest.h>

#include <chrono>

#include "http_types.hpp"
#include "ingress/verify.hpp"
#include "rate_limit.hpp"
#include "signing/webhook_signature.hpp"

using pgcourier::gateway::Request;
using pgcourier::gateway::ingress::Verify;

namespace {
Request With(std::string body, std::map<std::string, std::string> headers) {
  Request r;
  r.method = "POST";
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}
}  // namespace

TEST_CASE("ingress github: GitHub's published example verifies, a changed byte does not") {
  // docs.github.com "Validating webhook deliveries": secret, payload and signature.
  const std::string secret = "It's a Secret to Everybody";
  const auto ok = Verify("github", secret,
                         With("Hello, World!", {{"x-hub-signature-256",
                                                 "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
                                                {"x-github-delivery", "d-1"},
                                                {"x-github-event", "push"}}),
                         0, 300);
  CHECK(ok.accepted);
  CHECK(ok.delivery_id == "d-1");
  CHECK(ok.event_type == "github.push");
  const auto forged = Verify("github", secret,
                             With("Hello, World?", {{"x-hub-signature-256",
                                                     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
                                                    {"x-github-delivery", "d-1"}}),
                             0, 300);
  CHECK_FALSE(forged.accepted);
  CHECK(forged.status == 401);
  CHECK(Verify("github", secret, With("x", {{"x-github-delivery", "d"}}), 0, 300).status == 400);
}

TEST_CASE("ingress standard-webhooks: the spec's example verifies inside the window only") {
  // standardwebhooks.com reference test vector.
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const std::string body = R"({"test": 2432232314})";
  const std::map<std::string, std::string> headers = {
      {"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
      {"webhook-timestamp", "1614265330"},
      {"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
  CHECK(Verify("standard-webhooks", secret, With(body, headers), 1614265330 + 10, 300).accepted);
  const auto stale = Verify("standard-webhooks", secret, With(body, headers), 1614265330 + 301, 300);
  CHECK_FALSE(stale.accepted);
  CHECK(stale.reason.find("window") != std::string::npos);
  auto other = headers;
  other["webhook-id"] = "msg_other";
  CHECK_FALSE(Verify("standard-webhooks", secret, With(body, other), 1614265330, 300).accepted);
}

TEST_CASE("ingress stripe: t= and v1= over 't.body', several v1 allowed, window checked") {
  const std::string secret = "whsec_stripe_test";
  const std::string body = R"({"id":"evt_1","type":"invoice.paid"})";
  const std::string sig = pgcourier::signing::HexEncode(pgcourier::signing::HmacSha256(secret, {"1700000000", ".", body}));
  const auto ok = Verify("stripe", secret, With(body, {{"stripe-signature", "t=1700000000,v1=deadbeef,v1=" + sig}}),
                         1700000100, 300);
  CHECK(ok.accepted);
  CHECK(ok.delivery_id == "evt_1");
  CHECK(ok.event_type == "stripe.invoice.paid");
  CHECK_FALSE(Verify("stripe", secret, With(body, {{"stripe-signature", "t=1700000000,v1=" + sig}}), 1700001000, 300)
                  .accepted);
  CHECK(Verify("stripe", secret, With(body, {{"stripe-signature", "v1=" + sig}}), 1700000000, 300).status == 400);
}

TEST_CASE("ingress hmac-sha256: X-Signature over 'ts.body'") {
  const std::string body = "{}";
  const std::string sig = pgcourier::signing::HexEncode(pgcourier::signing::HmacSha256("k", {"100", ".", body}));
  CHECK(Verify("hmac-sha256", "k", With(body, {{"x-timestamp", "100"}, {"x-signature", "sha256=" + sig}}), 100, 60)
            .accepted);
  CHECK(Verify("hmac-sha256", "k", With(body, {{"x-timestamp", "100"}, {"x-signature", sig}}), 100, 60).accepted);
  CHECK_FALSE(Verify("hmac-sha256", "k2", With(body, {{"x-timestamp", "100"}, {"x-signature", sig}}), 100, 60).accepted);
  CHECK_FALSE(Verify("hmac-sha256", "k", With(body, {{"x-timestamp", "100"}, {"x-signature", sig}}), 200, 60).accepted);
  CHECK(Verify("hmac-sha256", "k", With(body, {{"x-timestamp", "1e2"}, {"x-signature", sig}}), 100, 60).status == 400);
}

TEST_CASE("rate limiter: a burst, then one token per 1/rate seconds, per key") {
  auto now = std::chrono::steady_clock::time_point{};
  pgcourier::gateway::RateLimiter limiter(2, 3, [&] { return now; });
  int retry = 0;
  CHECK(limiter.Allow("a"));
  CHECK(limiter.Allow("a"));
  CHECK(limiter.Allow("a"));
  CHECK_FALSE(limiter.Allow("a", &retry));
  CHECK(retry == 1);
  CHECK(limiter.Allow("b"));  // its own bucket
  now += std::chrono::milliseconds(500);
  CHECK(limiter.Allow("a"));
  CHECK_FALSE(limiter.Allow("a"));
  now += std::chrono::seconds(10);
  for (int i = 0; i < 3; ++i) CHECK(limiter.Allow("a"));  // refilled to the burst, not beyond
  CHECK_FALSE(limiter.Allow("a"));
}

TEST_CASE("forms and cookies are decoded") {
  const auto form = pgcourier::gateway::ParseForm("token=pgc_a%2Bb&csrf=fp_1&x=a+b&bad=%zz");
  CHECK(form.at("token") == "pgc_a+b");
  CHECK(form.at("x") == "a b");
  CHECK(form.at("bad") == "%zz");
  const auto cookies = pgcourier::gateway::ParseCookies("a=1; pgc_session=pgc_x; b=");
  CHECK(cookies.at("pgc_session") == "pgc_x");
  CHECK(cookies.at("b").empty());
  CHECK(pgcourier::gateway::UrlEncode("a b/c") == "a%20b%2Fc");
}

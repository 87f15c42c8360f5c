#include <doctest/doctest.h>

#include <algorithm>

#include "config/policies.hpp"
#include "lanes/runs/request.hpp"
#include "json/json.hpp"
#include "signing/webhook_signature.hpp"

using namespace pgcourier;

namespace {

model::ClaimedRun SampleRun() {
  model::ClaimedRun r;
  r.id = "run_1";
  r.tenant_id = "acme";
  r.connection_id = "conn_1";
  r.operation = "sms.send";
  r.method = "POST";
  r.path = "/v1/messages";
  r.headers_json = R"({"X-Request-Source": "billing"})";
  r.body = R"({"to": "+15550100"})";
  r.connection_found = true;
  r.connection.id = "conn_1";
  r.connection.tenant_id = "acme";
  r.connection.status = "active";
  r.connection.base_url = "https://api.example.com/";
  r.connection.auth_mode = "bearer";
  return r;
}

bool Has(const std::vector<std::string>& headers, const std::string& header) {
  return std::find(headers.begin(), headers.end(), header) != headers.end();
}

std::string PoisonCode(const model::ClaimedRun& run) {
  auto poison = lanes::runs::FindPoison(run, 1 << 20);
  return poison ? poison->error_code : "";
}

}  // namespace

TEST_CASE("a well-formed run is not poison") { CHECK(PoisonCode(SampleRun()) == ""); }

TEST_CASE("runs that can never execute are poison, each with its own code") {
  auto r = SampleRun();
  r.connection_found = false;
  CHECK(PoisonCode(r) == "unknown_connection");
  r = SampleRun();
  r.connection.status = "retired";
  CHECK(PoisonCode(r) == "retired_connection");
  r = SampleRun();
  r.connection.tenant_id = "other";
  CHECK(PoisonCode(r) == "tenant_mismatch");
  r = SampleRun();
  r.method = "TRACE";
  CHECK(PoisonCode(r) == "invalid_method");
  for (const char* path : {"", "v1/x", "//evil.example/x", "/a b", "/x\r\nHost: y", "/http://x", "/x\x01y", "/x\x7f"}) {
    r = SampleRun();
    r.path = path;
    CHECK_MESSAGE(PoisonCode(r) == "invalid_path", path);
  }
  r = SampleRun();
  r.idempotency_key = "order-42\r\nX-Injected: yes";  // sent as Idempotency-Key
  CHECK(PoisonCode(r) == "invalid_idempotency_key");
  r.idempotency_key = "order-42\x01";
  CHECK(PoisonCode(r) == "invalid_idempotency_key");
  r = SampleRun();
  r.headers_json = R"(["not", "an", "object"])";
  CHECK(PoisonCode(r) == "invalid_headers");
  r.headers_json = R"({"X-Count": 3})";
  CHECK(PoisonCode(r) == "invalid_headers");
  r.headers_json = R"({"Authorization": "Bearer stolen"})";
  CHECK(PoisonCode(r) == "invalid_headers");
  r.headers_json = R"({"Bad Name": "x"})";
  CHECK(PoisonCode(r) == "invalid_headers");
  r.headers_json = R"({"X-Inject": "a\r\nHost: evil"})";
  CHECK(PoisonCode(r) == "invalid_headers");
  r = SampleRun();
  r.body = "{not json";
  CHECK(PoisonCode(r) == "invalid_body");
  r.headers_json = R"({"Content-Type": "text/plain"})";
  CHECK(PoisonCode(r) == "");  // not JSON by its own content type: sent as is
  r = SampleRun();
  r.method = "GET";
  CHECK(PoisonCode(r) == "invalid_body");
  r.body.reset();
  CHECK(PoisonCode(r) == "");
  r = SampleRun();
  r.body = std::string(2 << 20, ' ');
  CHECK(PoisonCode(r) == "body_too_large");
}

TEST_CASE("the run request carries its headers, an idempotency key stable across retries, and the auth") {
  auto r = SampleRun();
  auto parts = lanes::runs::BuildRunRequest(r, {"Authorization: Bearer tok"}, 7);
  CHECK(parts.method == "POST");
  CHECK(parts.url == "https://api.example.com/v1/messages");
  CHECK(parts.body == R"({"to": "+15550100"})");
  CHECK(Has(parts.headers, "X-Request-Source: billing"));
  CHECK(Has(parts.headers, "Content-Type: application/json"));
  CHECK(Has(parts.headers, "Idempotency-Key: run_1"));
  CHECK(Has(parts.headers, "Authorization: Bearer tok"));
  r.idempotency_key = "order-42-sms";
  r.previous_attempts = 3;
  parts = lanes::runs::BuildRunRequest(r, {}, 8);
  CHECK(Has(parts.headers, "Idempotency-Key: order-42-sms"));
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  parts = lanes::runs::BuildRunRequest(r, {}, 1);
  CHECK(Has(parts.headers, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-01"));
}

TEST_CASE("auth headers follow the connection's auth mode") {
  model::Connection c;
  c.auth_mode = "api_key";
  CHECK(lanes::runs::AuthHeaders(c, "k1", "") == std::vector<std::string>{"X-Api-Key: k1"});
  c.api_key_header = "X-Vendor-Key";
  CHECK(lanes::runs::AuthHeaders(c, "k1", "") == std::vector<std::string>{"X-Vendor-Key: k1"});
  c.auth_mode = "basic";
  CHECK(lanes::runs::AuthHeaders(c, "user:pw", "") ==
        std::vector<std::string>{"Authorization: Basic " + signing::Base64Encode("user:pw")});
  c.auth_mode = "oauth2_client_credentials";
  CHECK(lanes::runs::AuthHeaders(c, "client-secret", "tok") == std::vector<std::string>{"Authorization: Bearer tok"});
  c.auth_mode = "none";
  CHECK(lanes::runs::AuthHeaders(c, "", "").empty());
}

TEST_CASE("the token request is a client-credentials form post with HTTP Basic client authentication") {
  model::Connection c;
  c.token_url = "https://auth.example.com/oauth/token";
  c.client_id = "my client";
  c.scopes = "sms:send read";
  const auto parts = lanes::runs::BuildTokenRequest(c, "s3cr&t");
  CHECK(parts.method == "POST");
  CHECK(parts.url == c.token_url);
  CHECK(parts.body == "grant_type=client_credentials&scope=sms%3Asend+read");
  CHECK(Has(parts.headers, "Authorization: Basic " + signing::Base64Encode("my+client:s3cr%26t")));
  CHECK(Has(parts.headers, "Content-Type: application/x-www-form-urlencoded"));
}

TEST_CASE("a probe passes on its expected status, else on any 2xx, never on a transport error") {
  model::HttpResult r;
  r.status_code = 204;
  CHECK(lanes::runs::ProbePassed(r, 0));
  CHECK_FALSE(lanes::runs::ProbePassed(r, 200));
  r.status_code = 418;
  CHECK(lanes::runs::ProbePassed(r, 418));
  r.transport_error = model::TransportError::kTimeout;
  CHECK_FALSE(lanes::runs::ProbePassed(r, 418));
}

TEST_CASE("JSON pointers take the external reference out of a vendor response") {
  const std::string body = R"({"sid": "SM123", "data": {"id": 42, "tags": ["a", "b"]}, "a/b": true})";
  CHECK(json::ValueAtPointer(body, "/sid") == "SM123");
  CHECK(json::ValueAtPointer(body, "/data/id") == "42");
  CHECK(json::ValueAtPointer(body, "/data/tags/1") == "b");
  CHECK(json::ValueAtPointer(body, "/a~1b") == "true");
  CHECK_FALSE(json::ValueAtPointer(body, "/missing").has_value());
  CHECK_FALSE(json::ValueAtPointer("{truncated", "/sid").has_value());
}

TEST_CASE("token responses need an access_token; expires_in may be a number or a numeric string") {
  auto t = json::ParseTokenResponse(R"({"access_token": "abc", "token_type": "Bearer", "expires_in": 3599})");
  REQUIRE(t.has_value());
  CHECK(t->access_token == "abc");
  CHECK(t->expires_in_seconds == 3599);
  t = json::ParseTokenResponse(R"({"access_token": "abc", "expires_in": "60"})");
  REQUIRE(t.has_value());
  CHECK(t->expires_in_seconds == 60);
  CHECK_FALSE(json::ParseTokenResponse(R"({"error": "invalid_client"})").has_value());
  CHECK_FALSE(json::ParseTokenResponse(R"({"access_token": ""})").has_value());
  CHECK_FALSE(json::ParseTokenResponse("<html>").has_value());
}

TEST_CASE("policies accept an integration block and reject bad values with their path") {
  const auto set = config::ParsePolicies(R"(policies:
  default:
    integration:
      health_check_interval: 2s
      unhealthy_after: 3
      run_when_degraded: true
      max_rate_limited_waits: 5
      token_refresh_margin: 30s
)",
                                         "p.yaml");
  const auto* p = set.Find("default");
  REQUIRE(p != nullptr);
  CHECK(p->integration.health_check_interval == model::Millis{2000});
  CHECK(p->integration.unhealthy_after == 3);
  CHECK(p->integration.run_when_degraded);
  CHECK(p->integration.max_rate_limited_waits == 5);
  CHECK(p->integration.token_refresh_margin == model::Millis{30000});
  CHECK_THROWS_WITH_AS(config::ParsePolicies("policies:\n  default:\n    integration:\n      unhealthy_after: 0\n", "p.yaml"),
                       doctest::Contains("policies.default.integration.unhealthy_after"), config::ConfigError);
}

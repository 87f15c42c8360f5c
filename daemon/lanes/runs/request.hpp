// Turning a claimed integration run into the HTTP request a vendor receives,
// and the OAuth2 token and health-check requests around it. Pure functions
// (no I/O, no clock); thread-safe. Secrets pass through here into request
// headers and bodies only, never into the returned error texts.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/delivery.hpp"
#include "model/run.hpp"

namespace pgcourier::lanes::runs {

// Why a run can never execute (it is dead-lettered as poison), or nullopt.
struct PoisonReason {
  std::string error_code;  // unknown_connection, retired_connection, tenant_mismatch, invalid_method,
                           // invalid_path, invalid_idempotency_key, invalid_headers, invalid_body,
                           // body_too_large, invalid_external_ref
  std::string message;
};
std::optional<PoisonReason> FindPoison(const model::ClaimedRun& run, std::size_t max_body_bytes);

// base_url + path, with exactly one '/' between them.
std::string JoinUrl(std::string_view base_url, std::string_view path);

// The credential's headers for a connection: api_key -> "<header>: secret",
// bearer -> "Authorization: Bearer secret", basic -> "Authorization: Basic
// base64(secret)", oauth2 -> "Authorization: Bearer access_token". None for 'none'.
std::vector<std::string> AuthHeaders(const model::Connection& connection, std::string_view secret,
                                     std::string_view access_token);

struct RequestParts {
  std::string method;
  std::string url;
  std::vector<std::string> headers;
  std::string body;
};

// The run's request: its headers (already checked by FindPoison), the
// Idempotency-Key (its idempotency_key, else the run id: the same on every
// retry), Content-Type: application/json for a body without one, traceparent
// when the run carries a trace, and the auth headers.
RequestParts BuildRunRequest(const model::ClaimedRun& run, const std::vector<std::string>& auth_headers,
                             std::uint64_t span_id);

// RFC 6749 section 4.4 client credentials: POST token_url, form body
// grant_type=client_credentials[&scope=...], client authenticated with HTTP Basic.
RequestParts BuildTokenRequest(const model::Connection& connection, std::string_view client_secret);

// The connection's health check (method + path on base_url), with auth.
RequestParts BuildProbeRequest(const model::Connection& connection, const std::vector<std::string>& auth_headers);

// Whether a health check's result passes: the expected status, else any 2xx.
bool ProbePassed(const model::HttpResult& result, int expected_status);

// application/x-www-form-urlencoded encoding of one value.
std::string FormEncode(std::string_view value);

}  // namespace pgcourier::lanes::runs

#include "lanes/runs/request.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include "base/text.hpp"
#include "json/json.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::lanes::runs {
namespace {

constexpr std::array<std::string_view, 5> kMethods = {"GET", "POST", "PUT", "PATCH", "DELETE"};
// Headers a run may not set: the daemon owns them (credentials come from the
// connection, framing from curl, the idempotency key from the run row).
constexpr std::array<std::string_view, 9> kReservedHeaders = {
    "authorization", "proxy-authorization", "idempotency-key", "host", "content-length",
    "transfer-encoding", "connection", "cookie", "te"};

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool IsToken(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool HasControlCharacters(std::string_view value) {
  return std::any_of(value.begin(), value.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

// The content type the run's headers name, lower-case, "" when none.
std::string ContentType(const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (Lower(name) == "content-type") return Lower(value);
  }
  return "";
}

bool IsJsonContentType(std::string_view content_type) {
  return content_type.empty() || content_type.rfind("application/json", 0) == 0 ||
         content_type.find("+json") != std::string_view::npos;
}

}  // namespace

std::optional<PoisonReason> FindPoison(const model::ClaimedRun& run, std::size_t max_body_bytes) {
  if (!run.connection_found) {
    return PoisonReason{"unknown_connection", "connection " + run.connection_id + " does not exist"};
  }
  if (run.connection.status == "retired") {
    return PoisonReason{"retired_connection", "connection " + run.connection_id + " is retired"};
  }
  if (run.connection.tenant_id != run.tenant_id) {
    return PoisonReason{"tenant_mismatch", "connection " + run.connection_id + " belongs to another tenant"};
  }
  if (std::find(kMethods.begin(), kMethods.end(), run.method) == kMethods.end()) {
    return PoisonReason{"invalid_method", "method must be GET, POST, PUT, PATCH or DELETE"};
  }
  if (run.path.empty() || run.path[0] != '/' || run.path.find("://") != std::string::npos ||
      run.path.find(' ') != std::string::npos || HasControlCharacters(run.path) || run.path.rfind("//", 0) == 0) {
    return PoisonReason{"invalid_path", "path must start with a single '/' and contain no spaces"};
  }
  // Sent as the Idempotency-Key header: a CR or LF would start a header of the producer's choosing.
  if (HasControlCharacters(run.idempotency_key)) {
    return PoisonReason{"invalid_idempotency_key", "idempotency_key has control characters"};
  }
  std::string why;
  const auto headers = json::StringObject(run.headers_json, &why);
  if (!headers) return PoisonReason{"invalid_headers", "headers: " + why};
  for (const auto& [name, value] : *headers) {
    if (!IsToken(name)) return PoisonReason{"invalid_headers", "headers: '" + name + "' is not a valid header name"};
    if (HasControlCharacters(value)) {
      return PoisonReason{"invalid_headers", "headers: the value of '" + name + "' has control characters"};
    }
    const std::string lower = Lower(name);
    if (std::find(kReservedHeaders.begin(), kReservedHeaders.end(), lower) != kReservedHeaders.end()) {
      return PoisonReason{"invalid_headers", "headers: '" + name +
                                                 "' is set by the daemon (credentials belong to the connection)"};
    }
  }
  if (run.body && run.method == "GET") {
    return PoisonReason{"invalid_body", "a GET run cannot carry a body"};
  }
  if (run.body) {
    if (run.body->size() > max_body_bytes) {
      return PoisonReason{"body_too_large", "body is " + std::to_string(run.body->size()) +
                                                " bytes, over the policy's max_body_bytes (" +
                                                std::to_string(max_body_bytes) + ")"};
    }
    if (IsJsonContentType(ContentType(*headers)) && !json::IsValid(*run.body)) {
      return PoisonReason{"invalid_body", "body is not valid JSON (content type JSON)"};
    }
  }
  if (!run.external_ref_pointer.empty() && run.external_ref_pointer[0] != '/') {
    return PoisonReason{"invalid_external_ref", "external_ref_pointer must be a JSON pointer starting with '/'"};
  }
  return std::nullopt;
}

std::string JoinUrl(std::string_view base_url, std::string_view path) {
  while (!base_url.empty() && base_url.back() == '/') base_url.remove_suffix(1);
  std::string url(base_url);
  if (path.empty() || path[0] != '/') url.push_back('/');
  url.append(path);
  return url;
}

std::vector<std::string> AuthHeaders(const model::Connection& connection, std::string_view secret,
                                     std::string_view access_token) {
  const auto& mode = connection.auth_mode;
  if (mode == "api_key") {
    const std::string header = connection.api_key_header.empty() ? "X-Api-Key" : connection.api_key_header;
    return {header + ": " + std::string(secret)};
  }
  if (mode == "bearer") return {"Authorization: Bearer " + std::string(secret)};
  if (mode == "basic") return {"Authorization: Basic " + signing::Base64Encode(secret)};
  if (mode == "oauth2_client_credentials") return {"Authorization: Bearer " + std::string(access_token)};
  return {};
}

RequestParts BuildRunRequest(const model::ClaimedRun& run, const std::vector<std::string>& auth_headers,
                             std::uint64_t span_id) {
  RequestParts parts;
  parts.method = run.method;
  parts.url = JoinUrl(run.connection.base_url, run.path);
  const auto headers = json::StringObject(run.headers_json).value_or(decltype(json::StringObject(""))::value_type{});
  for (const auto& [name, value] : headers) {
    std::string line = name;
    line += ": ";
    line += value;
    parts.headers.push_back(std::move(line));
  }
  if (run.body && run.method != "GET") {
    parts.body = *run.body;
    if (ContentType(headers).empty()) parts.headers.emplace_back("Content-Type: application/json");
  }
  parts.headers.push_back("Idempotency-Key: " + (run.idempotency_key.empty() ? run.id : run.idempotency_key));
  const std::string traceparent = base::TraceParent(run.trace_id, span_id);
  if (!traceparent.empty()) parts.headers.push_back("traceparent: " + traceparent);
  // No "Expect: 100-continue" round trip for larger bodies.
  parts.headers.emplace_back("Expect:");
  parts.headers.insert(parts.headers.end(), auth_headers.begin(), auth_headers.end());
  return parts;
}

RequestParts BuildTokenRequest(const model::Connection& connection, std::string_view client_secret) {
  RequestParts parts;
  parts.method = "POST";
  parts.url = connection.token_url;
  parts.body = "grant_type=client_credentials";
  if (!connection.scopes.empty()) parts.body += "&scope=" + FormEncode(connection.scopes);
  // RFC 6749 section 2.3.1: client id and secret are form-encoded before Basic.
  parts.headers = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json", "Expect:",
                   "Authorization: Basic " +
                       signing::Base64Encode(FormEncode(connection.client_id) + ":" + FormEncode(client_secret))};
  return parts;
}

RequestParts BuildProbeRequest(const model::Connection& connection, const std::vector<std::string>& auth_headers) {
  RequestParts parts;
  parts.method = connection.health_check_method.empty() ? "GET" : connection.health_check_method;
  parts.url = JoinUrl(connection.base_url, connection.health_check_path);
  parts.headers = auth_headers;
  return parts;
}

bool ProbePassed(const model::HttpResult& result, int expected_status) {
  if (result.transport_error != model::TransportError::kNone &&
      result.transport_error != model::TransportError::kBodyTooLarge) {
    return false;
  }
  if (expected_status > 0) return result.status_code == expected_status;
  return result.status_code >= 200 && result.status_code <= 299;
}

std::string FormEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace pgcourier::lanes::runs

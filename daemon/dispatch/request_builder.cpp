#include "dispatch/request_builder.hpp"

#include <cstdio>

#include "signing/webhook_signature.hpp"

namespace pgcourier::dispatch {
namespace {

bool IsLowerHex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !text.empty();
}

}  // namespace

std::string JsonQuote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string BuildEnvelope(const model::ClaimedDelivery& delivery) {
  std::string body;
  body.reserve(delivery.payload_json.size() + delivery.event_type.size() + 64);
  body += "{\"type\":";
  body += JsonQuote(delivery.event_type);
  body += ",\"timestamp\":";
  body += JsonQuote(delivery.event_created_at);
  body += ",\"data\":";
  body += delivery.payload_json;  // already JSON text (jsonb output)
  body += "}";
  return body;
}

std::string TraceParent(std::string_view trace_id, std::uint64_t span_id) {
  // version-traceid-parentid-flags, all lower-case hex.
  if (trace_id.size() == 55 && trace_id.substr(0, 3) == "00-" && trace_id[35] == '-' && trace_id[52] == '-' &&
      IsLowerHex(trace_id.substr(3, 32)) && IsLowerHex(trace_id.substr(36, 16)) && IsLowerHex(trace_id.substr(53, 2))) {
    return std::string(trace_id);
  }
  if (trace_id.size() == 32 && IsLowerHex(trace_id) && trace_id != std::string(32, '0')) {
    char span[17];
    std::snprintf(span, sizeof span, "%016llx", static_cast<unsigned long long>(span_id | 1));
    return "00-" + std::string(trace_id) + "-" + span + "-01";
  }
  return {};
}

std::vector<std::string> BuildHeaders(const model::ClaimedDelivery& delivery, std::string_view body,
                                      const std::vector<std::string>& keys, std::int64_t unix_seconds,
                                      std::uint64_t span_id) {
  std::vector<std::string> headers;
  headers.reserve(5);
  headers.emplace_back("content-type: application/json");
  headers.push_back("webhook-id: " + delivery.event_id);
  headers.push_back("webhook-timestamp: " + std::to_string(unix_seconds));
  if (!keys.empty()) {
    headers.push_back("webhook-signature: " +
                      signing::SignatureHeader(keys, delivery.event_id, unix_seconds, body));
  }
  const std::string traceparent = TraceParent(delivery.trace_id, span_id);
  if (!traceparent.empty()) headers.push_back("traceparent: " + traceparent);
  return headers;
}

}  // namespace pgcourier::dispatch

#include "lanes/deliveries/request.hpp"

#include "base/text.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::lanes::deliveries {

std::string BuildEnvelope(const model::ClaimedDelivery& delivery) {
  std::string body;
  body.reserve(delivery.payload_json.size() + delivery.event_type.size() + 64);
  body += "{\"type\":";
  body += base::JsonQuote(delivery.event_type);
  body += ",\"timestamp\":";
  body += base::JsonQuote(delivery.event_created_at);
  body += ",\"data\":";
  body += delivery.payload_json;  // already JSON text (jsonb output)
  body += "}";
  return body;
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
  const std::string traceparent = base::TraceParent(delivery.trace_id, span_id);
  if (!traceparent.empty()) headers.push_back("traceparent: " + traceparent);
  return headers;
}

}  // namespace pgcourier::lanes::deliveries

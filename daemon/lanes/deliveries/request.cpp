#include "lanes/deliveries/request.hpp"

#include "base/text.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::lanes::deliveries {

std::string TakeEnvelope(model::ClaimedDelivery& delivery) {
  std::string prefix = "{\"type\":";
  prefix += base::JsonQuote(delivery.event_type);
  prefix += ",\"timestamp\":";
  prefix += base::JsonQuote(delivery.event_created_at);
  prefix += ",\"data\":";
  // The payload is already JSON text (jsonb output). It becomes the body in
  // place: with the room the store left, no second buffer of its size.
  std::string body = std::move(delivery.payload_json);
  delivery.payload_json.clear();
  if (body.capacity() < body.size() + prefix.size() + 1) body.reserve(body.size() + prefix.size() + 1);
  body.insert(0, prefix);
  body.push_back('}');
  return body;
}

std::vector<std::string> BuildHeaders(const model::ClaimedDelivery& delivery, std::string_view body,
                                      const std::vector<signing::SigningKey>& keys, std::int64_t unix_seconds,
                                      std::uint64_t span_id) {
  std::vector<std::string> headers;
  headers.reserve(5);
  headers.emplace_back("content-type: application/json");
  headers.push_back("webhook-id: " + delivery.event_id);
  headers.push_back("webhook-timestamp: " + std::to_string(unix_seconds));
  if (!keys.empty()) {
    headers.push_back("webhook-signature: " +
                      signing::SignatureHeaderForKeys(keys, delivery.event_id, unix_seconds, body));
  }
  const std::string traceparent = base::TraceParent(delivery.trace_id, span_id);
  if (!traceparent.empty()) headers.push_back("traceparent: " + traceparent);
  return headers;
}

}  // namespace pgcourier::lanes::deliveries

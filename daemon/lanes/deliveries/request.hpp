// Turning a claimed delivery into the HTTP request a subscriber receives:
// the Standard Webhooks envelope and headers. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/delivery.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::lanes::deliveries {

// {"type":<event_type>,"timestamp":<event created_at>,"data":<payload>}
std::string TakeEnvelope(model::ClaimedDelivery& delivery);

// content-type, webhook-id (event id: the same on every retry), webhook-timestamp,
// webhook-signature (one per key: v1 for HMAC keys, v1a for ed25519 ones),
// and traceparent when the event carries a W3C trace. `keys` newest first.
std::vector<std::string> BuildHeaders(const model::ClaimedDelivery& delivery, std::string_view body,
                                      const std::vector<signing::SigningKey>& keys, std::int64_t unix_seconds,
                                      std::uint64_t span_id);

}  // namespace pgcourier::lanes::deliveries

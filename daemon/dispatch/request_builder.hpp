// Turning a claimed delivery into the HTTP request a subscriber receives:
// the Standard Webhooks envelope and headers. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/delivery.hpp"

namespace pgcourier::dispatch {

// {"type":<event_type>,"timestamp":<event created_at>,"data":<payload>}
std::string BuildEnvelope(const model::ClaimedDelivery& delivery);

// JSON string literal (with quotes) for arbitrary UTF-8 text.
std::string JsonQuote(std::string_view text);

// content-type, webhook-id (event id: the same on every retry), webhook-timestamp,
// webhook-signature (one per key), and traceparent when the event carries a
// W3C trace. `keys` are raw secret bytes, newest first.
std::vector<std::string> BuildHeaders(const model::ClaimedDelivery& delivery, std::string_view body,
                                      const std::vector<std::string>& keys, std::int64_t unix_seconds,
                                      std::uint64_t span_id);

// A W3C traceparent header value for the event's trace_id: passed through
// when it already is one, built with span_id when it is a bare 32-hex trace
// id, empty otherwise.
std::string TraceParent(std::string_view trace_id, std::uint64_t span_id);

}  // namespace pgcourier::dispatch

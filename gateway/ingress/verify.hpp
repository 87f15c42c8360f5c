// The signature checks of inbound webhooks, before anything is stored: pure
// functions of the request, the source's secret and the time (injected), so
// each scheme is unit-tested with known vectors and forged inputs.
//
//   standard-webhooks  webhook-id, webhook-timestamp, webhook-signature ("v1,<base64>" ...),
//                      HMAC over "id.timestamp.body" with the whsec_ key; timestamp window
//   github             X-Hub-Signature-256: sha256=<hex HMAC of the body>; delivery id X-GitHub-Delivery,
//                      event type "github." + X-GitHub-Event. GitHub signs no timestamp: a replayed
//                      delivery is stopped by its delivery id (the event's idempotency key)
//   stripe             Stripe-Signature: t=<ts>,v1=<hex HMAC of "ts.body"> (several v1 allowed);
//                      delivery id and event type from the body's id and type; timestamp window
//   hmac-sha256        X-Signature: sha256=<hex HMAC of "ts.body">, X-Timestamp: <unix seconds>,
//                      X-Delivery-Id (else the signature itself); timestamp window
//
// Thread-safe (no state).
#pragma once

#include <cstdint>
#include <string>

#include "http_types.hpp"

namespace pgcourier::gateway::ingress {

struct Verdict {
  bool accepted = false;
  int status = 401;         // refused: 401 (signature, timestamp) or 400 (malformed); never told why
  std::string reason;       // refused: recorded in courier.ingress_requests, not sent
  std::string delivery_id;  // the provider's id of this delivery (idempotency)
  std::string event_type;   // from the request; empty when the scheme has none
};

// `secret` is the secret as configured (whsec_... for standard-webhooks; the
// literal string for the others). `now` is Unix seconds.
Verdict Verify(const std::string& scheme, const std::string& secret, const Request& request, std::int64_t now,
               int tolerance_seconds);

}  // namespace pgcourier::gateway::ingress

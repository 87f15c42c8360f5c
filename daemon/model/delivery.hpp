// Plain data describing deliveries, HTTP results and outcomes as they move
// between store/, http/, retry/ and lanes/. No third-party includes.
// Value types; not synchronised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/policy.hpp"

namespace pgcourier::model {

enum class DeliveryStatus { kPending, kDelivering, kDelivered, kRetryScheduled, kFailed, kDeadLettered };
std::string_view ToString(DeliveryStatus status);
bool IsTerminal(DeliveryStatus status);

// Why an attempt failed; decides what happens next. kNone for success.
enum class FailureClass { kNone, kTransient, kRateLimited, kAuth, kValidation, kPoison, kBlockedDestination };
std::string_view ToString(FailureClass failure_class);  // "" for kNone, else "transient", ...

// A delivery claimed by this worker (status 'delivering', lease held).
// Spare capacity the envelope needs around a payload whose event type is
// `event_type_bytes` long ({"type":...,"timestamp":...,"data": and "}", the
// type JSON-quoted: at most 6 bytes per byte).
inline std::size_t EnvelopeRoom(std::size_t event_type_bytes) { return 96 + 6 * event_type_bytes; }

struct ClaimedDelivery {
  std::string id;
  std::string tenant_id;
  std::string event_id;
  std::string subscription_id;
  std::string event_type;
  std::string url;
  std::string policy_name;
  bool subscription_active = true;
  bool subscription_paused = false;
  int attempt_budget_base = 0;      // attempts made before the last replay
  std::string ordering_key;         // FIFO key, empty when unordered
  int max_in_flight = 0;            // the subscription's own limits, 0 = policy's
  double rate_per_second = 0;
  int rate_burst = 0;
  bool tenant_consistent = true;    // delivery, event and subscription name the same tenant
  std::string trace_id;             // may be empty
  // The event payload, as JSON text. The store reads it with EnvelopeRoom()
  // bytes of spare capacity, so the webhook envelope is built around it in
  // its own buffer (lanes/deliveries/request.hpp: TakeEnvelope): a large
  // payload is in memory once, not twice.
  std::string payload_json;
  std::string event_created_at;     // RFC 3339, UTC
  std::int64_t event_created_us = 0;  // unix microseconds
  int previous_attempts = 0;        // attempts recorded before this claim
  std::vector<std::string> sealed_secrets;  // encrypted signing secrets, newest first
  int payload_bytes = 0;            // the payload's size as measured at publish
  int Attempt() const { return previous_attempts + 1; }
  // The attempt number within the current budget (what max_attempts counts).
  int BudgetAttempt() const { return Attempt() - attempt_budget_base; }
};

// What the transport layer saw for one request.
// kBlocked: the endpoint-safety rules refused the destination; nothing was sent.
// kInvalidRequest: a header or the URL could split the request (CR, LF, NUL...);
// nothing was sent (http/request_check.hpp).
enum class TransportError {
  kNone, kTimeout, kConnect, kDns, kTls, kProtocol, kBodyTooLarge, kAborted, kBlocked, kInvalidRequest, kOther
};
std::string_view ToString(TransportError error);

struct HttpResult {
  TransportError transport_error = TransportError::kNone;
  int status_code = 0;            // 0 when no response status was received
  std::string error_message;      // transport error text (curl's), may contain a URL
  std::string body_excerpt;       // first bytes of the response body, raw
  std::string retry_after;        // Retry-After header value, if any
  std::string location;           // Location header value, if any (for 3xx)
  double duration_ms = 0;
  std::int64_t started_us = 0;    // unix microseconds when the request started
};

// What every recorded attempt has, a delivery's or a run's: the lease it is
// recorded under, its number, what happened and what that means.
struct AttemptRecord {
  // The lease holder the row must still have: empty means the writing worker.
  // A rescue names the dead daemon and applies only while the lease is expired.
  std::string expected_owner;
  bool rescue = false;
  int attempt = 0;                // the attempt number being recorded
  std::optional<std::int64_t> retry_delay_ms;  // set when the item is scheduled again
  std::optional<int> status_code;
  std::string outcome;            // "delivered", "http_error", "timeout", "lease_expired", ...
  FailureClass failure_class = FailureClass::kNone;
  bool retryable = false;
  std::string error_summary;      // <= 512 bytes, redacted, valid UTF-8
  std::string response_excerpt;   // <= policy excerpt bytes, valid UTF-8
  std::int64_t started_us = 0;
  double duration_ms = 0;
};

// The recorded result of one attempt plus the next state of its delivery.
struct DeliveryOutcome : AttemptRecord {
  std::string delivery_id;
  std::string subscription_id;
  DeliveryStatus next_status = DeliveryStatus::kFailed;
};

}  // namespace pgcourier::model

#include "model/delivery.hpp"

namespace pgcourier::model {

std::string_view ToString(DeliveryStatus status) {
  switch (status) {
    case DeliveryStatus::kPending: return "pending";
    case DeliveryStatus::kDelivering: return "delivering";
    case DeliveryStatus::kDelivered: return "delivered";
    case DeliveryStatus::kRetryScheduled: return "retry_scheduled";
    case DeliveryStatus::kFailed: return "failed";
    case DeliveryStatus::kDeadLettered: return "dead_lettered";
  }
  return "unknown";
}

bool IsTerminal(DeliveryStatus status) {
  return status == DeliveryStatus::kDelivered || status == DeliveryStatus::kFailed ||
         status == DeliveryStatus::kDeadLettered;
}

std::string_view ToString(FailureClass failure_class) {
  switch (failure_class) {
    case FailureClass::kNone: return "";
    case FailureClass::kTransient: return "transient";
    case FailureClass::kRateLimited: return "rate_limited";
    case FailureClass::kAuth: return "auth";
    case FailureClass::kValidation: return "validation";
    case FailureClass::kPoison: return "poison";
    case FailureClass::kBlockedDestination: return "blocked_destination";
  }
  return "";
}

std::string_view ToString(TransportError error) {
  switch (error) {
    case TransportError::kNone: return "none";
    case TransportError::kTimeout: return "timeout";
    case TransportError::kConnect: return "connection_error";
    case TransportError::kDns: return "dns_error";
    case TransportError::kTls: return "tls_error";
    case TransportError::kProtocol: return "protocol_error";
    case TransportError::kBodyTooLarge: return "body_too_large";
    case TransportError::kAborted: return "aborted";
    case TransportError::kBlocked: return "blocked_destination";
    case TransportError::kInvalidRequest: return "invalid_request";
    case TransportError::kOther: return "transport_error";
  }
  return "transport_error";
}

}  // namespace pgcourier::model

#include "model/run.hpp"

namespace pgcourier::model {

std::string_view ToString(RunStatus status) {
  switch (status) {
    case RunStatus::kPending: return "pending";
    case RunStatus::kRunning: return "running";
    case RunStatus::kCompleted: return "completed";
    case RunStatus::kFailed: return "failed";
    case RunStatus::kDeadLettered: return "dead_lettered";
  }
  return "unknown";
}

std::string_view ToString(NextAction action) {
  switch (action) {
    case NextAction::kNone: return "";
    case NextAction::kRetry: return "retry";
    case NextAction::kDeadLetter: return "dead_letter";
    case NextAction::kEscalate: return "escalate";
  }
  return "";
}

}  // namespace pgcourier::model

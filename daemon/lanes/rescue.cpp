#include "lanes/rescue.hpp"

#include "retry/text.hpp"

namespace pgcourier::lanes {

void RecordLeaseExpired(model::AttemptRecord& record, const std::string& lease_owner, int previous_attempts,
                        std::int64_t now_unix_us) {
  record.expected_owner = lease_owner;
  record.rescue = true;
  record.attempt = previous_attempts + 1;
  record.outcome = "lease_expired";
  record.failure_class = model::FailureClass::kTransient;
  record.retryable = true;
  record.error_summary = retry::SafeSummary("lease held by " + lease_owner + " expired before a result was recorded");
  record.started_us = now_unix_us;
}

}  // namespace pgcourier::lanes

// Named SQL statements of the daemon's hot path. The name is the prepared
// statement name and the label in logs and metrics.
#pragma once

#include <utility>
#include <vector>

namespace pgcourier::store {

inline constexpr const char* kDeliveriesChannel = "courier_deliveries";

inline constexpr const char* kStmtClaimDue = "claim_due";
inline constexpr const char* kStmtRecordOutcomes = "record_outcomes";
inline constexpr const char* kStmtQuarantine = "quarantine_outcome";
inline constexpr const char* kStmtFindExpiredLeases = "find_expired_leases";
inline constexpr const char* kStmtReleaseLeases = "release_leases";
inline constexpr const char* kStmtSchemaVersions = "schema_versions";
inline constexpr const char* kStmtWakeHeld = "wake_held";
inline constexpr const char* kStmtPauseSubscription = "pause_subscription";
inline constexpr const char* kStmtDisableSubscription = "disable_subscription";
inline constexpr const char* kStmtTryLeadership = "try_leadership";
inline constexpr const char* kStmtQueueMetrics = "queue_metrics";
inline constexpr const char* kStmtPrune = "prune";

// Prefix of last_error on deliveries put back unattempted (unknown policy,
// cannot be signed); wake_held looks for it.
inline constexpr const char* kHeldPrefix = "held: ";

// (name, SQL) of every statement prepared on a daemon connection.
const std::vector<std::pair<const char*, const char*>>& DaemonStatements();

}  // namespace pgcourier::store

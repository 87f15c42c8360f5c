// Named SQL statements of the daemon's hot path. The name is the prepared
// statement name and the label in logs and metrics.
#pragma once

#include <utility>
#include <vector>

namespace pgcourier::store {

inline constexpr const char* kDeliveriesChannel = "courier_deliveries";
inline constexpr const char* kRunsChannel = "courier_runs";
inline constexpr const char* kOutboxChannel = "courier_outbox";

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

// Integration runs (run_statements.cpp).
inline constexpr const char* kStmtClaimRuns = "claim_runs";
inline constexpr const char* kStmtRecordRunOutcomes = "record_run_outcomes";
inline constexpr const char* kStmtFindExpiredRunLeases = "find_expired_run_leases";
inline constexpr const char* kStmtReleaseRuns = "release_runs";
inline constexpr const char* kStmtDegradeConnection = "degrade_connection";
inline constexpr const char* kStmtConnectionsToProbe = "connections_to_probe";
inline constexpr const char* kStmtRecordProbe = "record_probe";
inline constexpr const char* kStmtPendingRotations = "pending_rotations";
inline constexpr const char* kStmtFinishRotation = "finish_rotation";
inline constexpr const char* kStmtRunQueueMetrics = "run_queue_metrics";
inline constexpr const char* kStmtPruneRuns = "prune_runs";

// Prefix of last_error on deliveries put back unattempted (unknown policy,
// cannot be signed); wake_held looks for it.
inline constexpr const char* kHeldPrefix = "held: ";

// (name, SQL) of every statement prepared on a daemon connection.
const std::vector<std::pair<const char*, const char*>>& DaemonStatements();
const std::vector<std::pair<const char*, const char*>>& RunStatements();

}  // namespace pgcourier::store

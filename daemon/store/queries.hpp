// The daemon's own statements, one per file in daemon/store/queries/ and
// embedded at build time (cmake/embed_queries.cmake). A statement's file
// name is its name everywhere: the prepared statement, the log line and the
// `statement` label of pgcourier_db_statement_duration_seconds. Operator
// statements (store/admin/) are not here: they are not on the daemon's path.
#pragma once

#include <string_view>
#include <vector>

namespace pgcourier::store {

struct NamedQuery {
  const char* name;
  const char* sql;
};

// Every file of daemon/store/queries/, sorted by name. Defined in the
// generated queries_embedded.cpp.
const std::vector<NamedQuery>& EmbeddedQueries();

namespace query {
// Deliveries.
inline constexpr const char* kClaimDue = "claim_due";
inline constexpr const char* kRecordOutcomes = "record_outcomes";
inline constexpr const char* kQuarantineOutcome = "quarantine_outcome";
inline constexpr const char* kFindExpiredLeases = "find_expired_leases";
inline constexpr const char* kReleaseLeases = "release_leases";
inline constexpr const char* kWakeHeld = "wake_held";
inline constexpr const char* kPauseSubscription = "pause_subscription";
inline constexpr const char* kDisableSubscription = "disable_subscription";
inline constexpr const char* kQueueMetrics = "queue_metrics";
inline constexpr const char* kPrune = "prune";
inline constexpr const char* kRenewLeases = "renew_leases";
inline constexpr const char* kShiftSchedules = "shift_schedules";
// Integration runs.
inline constexpr const char* kClaimRuns = "claim_runs";
inline constexpr const char* kRecordRunOutcomes = "record_run_outcomes";
inline constexpr const char* kFindExpiredRunLeases = "find_expired_run_leases";
inline constexpr const char* kReleaseRuns = "release_runs";
inline constexpr const char* kDegradeConnection = "degrade_connection";
inline constexpr const char* kConnectionsToProbe = "connections_to_probe";
inline constexpr const char* kRecordProbe = "record_probe";
inline constexpr const char* kPendingRotations = "pending_rotations";
inline constexpr const char* kFinishRotation = "finish_rotation";
inline constexpr const char* kRunQueueMetrics = "run_queue_metrics";
inline constexpr const char* kPruneRuns = "prune_runs";
inline constexpr const char* kRenewRunLeases = "renew_run_leases";
inline constexpr const char* kShiftRunSchedules = "shift_run_schedules";
inline constexpr const char* kStartDueRotations = "start_due_rotations";
inline constexpr const char* kStoreRotationResult = "store_rotation_result";
inline constexpr const char* kFailRotation = "fail_rotation";
inline constexpr const char* kMaintainKpis = "maintain_kpis";
// The engine: schema check, leadership, outbox wake-ups.
inline constexpr const char* kSchemaTableExists = "schema_table_exists";
inline constexpr const char* kSchemaVersions = "schema_versions";
inline constexpr const char* kTryLeadership = "try_leadership";
inline constexpr const char* kNotifyOutbox = "notify_outbox";
inline constexpr const char* kBeginOutcomes = "begin_outcomes";
inline constexpr const char* kDatabaseNow = "database_now";

// Every name above (a test checks that each has its file and each file its name).
inline constexpr const char* kAll[] = {
    kClaimDue, kRecordOutcomes, kQuarantineOutcome, kFindExpiredLeases, kReleaseLeases, kWakeHeld,
    kPauseSubscription, kDisableSubscription, kQueueMetrics, kPrune, kRenewLeases, kClaimRuns, kRecordRunOutcomes,
    kFindExpiredRunLeases, kReleaseRuns, kDegradeConnection, kConnectionsToProbe, kRecordProbe, kPendingRotations,
    kFinishRotation, kRunQueueMetrics, kPruneRuns, kRenewRunLeases, kStartDueRotations, kStoreRotationResult,
    kFailRotation, kMaintainKpis, kSchemaTableExists, kSchemaVersions, kTryLeadership, kNotifyOutbox,
    kBeginOutcomes, kDatabaseNow, kShiftSchedules, kShiftRunSchedules};
}  // namespace query

}  // namespace pgcourier::store

#include "store/admin/runs.hpp"

#include "store/admin/integrations_sql.hpp"

namespace pgcourier::store::admin {
namespace {

// courier.run_status s with courier.runs r for the idempotency key and pointer.
constexpr const char* kRuns = R"(
SELECT s.id, s.tenant_id, s.connection_id, s.provider, s.operation, s.method, s.path, s.status, s.attempts,
       date_trunc('second', s.next_attempt_at)::text AS next_attempt_at, s.lease_owner,
       date_trunc('second', s.lease_expires_at)::text AS lease_expires_at, s.external_ref, s.last_status_code,
       s.last_error, s.last_error_code, s.trace_id, date_trunc('second', s.created_at)::text AS created_at,
       date_trunc('second', s.started_at)::text AS started_at,
       date_trunc('second', s.completed_at)::text AS completed_at,
       round(s.latency_ms::numeric, 1)::float8 AS latency_ms, s.waiting_for, r.idempotency_key,
       r.external_ref_pointer
FROM courier.run_status s JOIN courier.runs r ON r.id = s.id )";

const pg::RowMapping<RunInfo> kRun = {
    {"id", &RunInfo::id},
    {"tenant_id", &RunInfo::tenant_id},
    {"connection_id", &RunInfo::connection_id},
    {"provider", &RunInfo::provider},
    {"operation", &RunInfo::operation},
    {"method", &RunInfo::method},
    {"path", &RunInfo::path},
    {"status", &RunInfo::status},
    {"attempts", &RunInfo::attempts},
    {"next_attempt_at", &RunInfo::next_attempt_at},
    {"lease_owner", &RunInfo::lease_owner},
    {"lease_expires_at", &RunInfo::lease_expires_at},
    {"external_ref", &RunInfo::external_ref},
    {"last_status_code", &RunInfo::last_status_code},
    {"last_error", &RunInfo::last_error},
    {"last_error_code", &RunInfo::last_error_code},
    {"trace_id", &RunInfo::trace_id},
    {"created_at", &RunInfo::created_at},
    {"started_at", &RunInfo::started_at},
    {"completed_at", &RunInfo::completed_at},
    {"latency_ms", &RunInfo::latency_ms},
    {"waiting_for", &RunInfo::waiting_for},
    {"idempotency_key", &RunInfo::idempotency_key},
    {"external_ref_pointer", &RunInfo::external_ref_pointer},
};

constexpr const char* kTimeline = R"(
SELECT t.attempt, to_char(t.started_at, 'YYYY-MM-DD HH24:MI:SS.MSOF') AS started_at, t.duration_ms, t.status_code,
       t.outcome, t.error_class, t.retryable, t.error_summary, t.worker, t.error_code, t.credential_version
FROM courier.run_timeline t WHERE t.run_id = $1 ORDER BY t.attempt)";

const pg::RowMapping<AttemptInfo> kAttempt = {
    {"attempt", &AttemptInfo::attempt},
    {"started_at", &AttemptInfo::started_at},
    {"duration_ms", &AttemptInfo::duration_ms},
    {"status_code", &AttemptInfo::status_code},
    {"outcome", &AttemptInfo::outcome},
    {"error_class", &AttemptInfo::error_class},
    {"retryable", &AttemptInfo::retryable},
    {"error_summary", &AttemptInfo::error_summary},
    {"worker", &AttemptInfo::worker},
    {"error_code", &AttemptInfo::error_code},
    {"credential_version", &AttemptInfo::credential_version},
};

constexpr const char* kFailures = R"(
SELECT f.id, date_trunc('second', f.created_at)::text AS created_at, f.category, f.error_code, f.message, f.attempt,
       f.next_action, date_trunc('second', f.resolved_at)::text AS resolved_at, f.resolution,
       (SELECT count(*) FROM courier.escalations e WHERE e.failure_id = f.id) AS escalations
FROM courier.failures f WHERE f.source = 'run' AND f.source_id = $1 ORDER BY f.created_at, f.id)";

const pg::RowMapping<FailureInfo> kFailure = {
    {"id", &FailureInfo::id},
    {"created_at", &FailureInfo::created_at},
    {"category", &FailureInfo::category},
    {"error_code", &FailureInfo::error_code},
    {"message", &FailureInfo::message},
    {"attempt", &FailureInfo::attempt},
    {"next_action", &FailureInfo::next_action},
    {"resolved_at", &FailureInfo::resolved_at},
    {"resolution", &FailureInfo::resolution},
    {"escalations", &FailureInfo::escalations},
};

}  // namespace

EnqueuedRun Runs::Enqueue(const NewRun& run) {
  return pg::Translate("enqueue run", [&] {
    NamedCall call("courier.enqueue_run");
    call.Arg("tenant_id", run.tenant_id)
        .Arg("connection_id", run.connection_id)
        .Arg("operation", run.operation)
        .ArgUnlessEmpty("method", run.method)
        .ArgUnlessEmpty("path", run.path)
        .ArgUnlessEmpty("body", run.body)
        .ArgUnlessEmpty("headers", run.headers_json, "jsonb")
        .ArgUnlessEmpty("idempotency_key", run.idempotency_key)
        .ArgUnlessEmpty("trace_id", run.trace_id)
        .ArgUnlessEmpty("external_ref_pointer", run.external_ref_pointer);
    pqxx::work txn(connection_.impl().conn);
    EnqueuedRun out;
    out.id = Text(call.Exec1(txn, "SELECT ")[0]);
    // A run inserted by this transaction was created at its now().
    out.created = txn.exec_params1("SELECT r.created_at = now() AS created FROM courier.runs r WHERE r.id = $1",
                                   out.id)["created"]
                      .as<bool>();
    auto connection =
        ReadConnections(txn.exec_params(kConnections + "WHERE c.id = (SELECT r.connection_id FROM courier.runs r "
                                                       "WHERE r.id = $1)",
                                        out.id));
    if (!connection.empty()) out.connection = std::move(connection[0]);
    txn.commit();
    return out;
  });
}

std::vector<RunInfo> Runs::List(const RunFilter& filter) {
  return pg::Translate("list runs", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kRun.ReadAll(txn.exec_params(std::string(kRuns) +
                                            "WHERE ($1 = '' OR s.tenant_id = $1) AND ($2 = '' OR s.status = $2) "
                                            "ORDER BY s.created_at DESC, s.id DESC LIMIT $3",
                                        filter.tenant_id, filter.status, filter.limit));
  });
}

std::optional<RunDetail> Runs::Show(const std::string& id) {
  return pg::Translate("show run", [&]() -> std::optional<RunDetail> {
    pqxx::read_transaction txn(connection_.impl().conn);
    const auto rows = txn.exec_params(std::string(kRuns) + "WHERE s.id = $1", id);
    if (rows.empty()) return std::nullopt;
    RunDetail detail;
    detail.run = kRun.Read(rows[0]);
    detail.timeline = kAttempt.ReadAll(txn.exec_params(kTimeline, id));
    detail.failures = kFailure.ReadAll(txn.exec_params(kFailures, id));
    return detail;
  });
}

RunReplay Runs::Replay(const std::string& id) {
  return pg::Translate("replay run", [&] {
    pqxx::work txn(connection_.impl().conn);
    // From the view, which courier_operator may read; replay_run() locks the run itself.
    const auto before = txn.exec_params("SELECT s.status FROM courier.run_status s WHERE s.id = $1", id);
    RunReplay out;
    if (!before.empty()) out.previous_status = Text(before[0]["status"]);
    // Called whatever the status: its refusals are the database's.
    out.replayed = NamedCall("courier.replay_run").Arg("run_id", id).Exec1(txn, "SELECT ")[0].as<bool>();
    txn.commit();
    return out;
  });
}

}  // namespace pgcourier::store::admin

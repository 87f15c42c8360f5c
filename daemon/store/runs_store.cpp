#include "store/runs_store.hpp"

#include "base/text.hpp"
#include "store/attempt_columns.hpp"
#include "store/pg/arrays.hpp"
#include "store/pg/rows.hpp"
#include "store/pg/session_impl.hpp"
#include "store/pg/shift.hpp"
#include "store/queries.hpp"

namespace pgcourier::store {
namespace {

using pg::ArrayBuilder;
using pg::RowMapping;

// The c_* columns of claim_runs, connections_to_probe and pending_rotations.
const RowMapping<model::Connection> kConnectionColumns = {
    {"c_id", &model::Connection::id},
    {"c_tenant_id", &model::Connection::tenant_id},
    {"c_status", &model::Connection::status},
    {"c_base_url", &model::Connection::base_url},
    {"c_auth_mode", &model::Connection::auth_mode},
    {"c_api_key_header", &model::Connection::api_key_header},
    {"c_token_url", &model::Connection::token_url},
    {"c_client_id", &model::Connection::client_id},
    {"c_scopes", &model::Connection::scopes},
    {"c_policy_name", &model::Connection::policy_name},
    {"c_max_in_flight", &model::Connection::max_in_flight},
    {"c_rate_per_second", &model::Connection::rate_per_second},
    {"c_rate_burst", &model::Connection::rate_burst},
    {"c_credential_id", &model::Connection::credential_id},
    {"c_credential_version", &model::Connection::credential_version},
    {"c_sealed_secret", &model::Connection::sealed_secret},
    {"c_health_check_method", &model::Connection::health_check_method},
    {"c_health_check_path", &model::Connection::health_check_path},
    {"c_health_check_expected_status", &model::Connection::health_check_expected_status},
};

const RowMapping<model::ClaimedRun> kRunColumns = {
    {"id", &model::ClaimedRun::id},
    {"tenant_id", &model::ClaimedRun::tenant_id},
    {"connection_id", &model::ClaimedRun::connection_id},
    {"operation", &model::ClaimedRun::operation},
    {"method", &model::ClaimedRun::method},
    {"path", &model::ClaimedRun::path},
    {"headers_json", &model::ClaimedRun::headers_json},
    {"body", &model::ClaimedRun::body},
    {"idempotency_key", &model::ClaimedRun::idempotency_key},
    {"external_ref_pointer", &model::ClaimedRun::external_ref_pointer},
    {"trace_id", &model::ClaimedRun::trace_id},
    {"last_error_code", &model::ClaimedRun::last_error_code},
    {"previous_attempts", &model::ClaimedRun::previous_attempts},
    {"rate_limited_attempts", &model::ClaimedRun::rate_limited_attempts},
    {"attempt_budget_base", &model::ClaimedRun::attempt_budget_base},
    {"connection_found", &model::ClaimedRun::connection_found},
    {"provider_wait_ms", &model::ClaimedRun::provider_wait_ms},
    {"provider_key", &model::ClaimedRun::provider_key},
};

const RowMapping<ExpiredRunLease> kExpiredColumns = {
    {"run_id", &ExpiredRunLease::run_id},
    {"lease_owner", &ExpiredRunLease::lease_owner},
    {"policy_name", &ExpiredRunLease::policy_name},
    {"previous_attempts", &ExpiredRunLease::previous_attempts},
    {"attempt_budget_base", &ExpiredRunLease::attempt_budget_base},
    {"rate_limited_attempts", &ExpiredRunLease::rate_limited_attempts},
};

const RowMapping<model::PendingRotation> kRotationColumns = {
    {"version_id", &model::PendingRotation::version_id},
    {"version", &model::PendingRotation::version},
    {"credential_id", &model::PendingRotation::credential_id},
    {"tenant_id", &model::PendingRotation::tenant_id},
};

// The first line of a database error, at most max_bytes, cut on a UTF-8
// character boundary (the server's DETAIL lines quote row contents).
std::string FirstLineCut(std::string_view text, std::size_t max_bytes) {
  return std::string(base::Utf8Prefix(text.substr(0, text.find('\n')), max_bytes));
}

// The columns of courier.record_run_outcomes, as array literals.
std::vector<std::string> OutcomeArrays(const std::string& worker, const std::vector<model::RunOutcome>& outcomes) {
  ArrayBuilder ids, statuses, error_codes, external_refs, next_actions, versions;
  AttemptColumns a;
  for (const auto& o : outcomes) {
    ids.AddText(o.run_id);
    statuses.AddText(model::ToString(o.next_status));
    error_codes.AddTextOrNull(o.error_code);
    external_refs.AddTextOrNull(o.external_ref);
    next_actions.AddTextOrNull(model::ToString(o.next_action));
    if (o.credential_version > 0) {
      versions.AddNumber(o.credential_version);
    } else {
      versions.AddNull();
    }
    a.Add(o, worker);
  }
  return {ids.Finish(),          a.attempts.Finish(),  a.owners.Finish(),     statuses.Finish(),
          a.delays.Finish(),     a.codes.Finish(),     a.names.Finish(),      a.classes.Finish(),
          error_codes.Finish(),  a.retryable.Finish(), a.summaries.Finish(),  a.excerpts.Finish(),
          a.started.Finish(),    a.durations.Finish(), external_refs.Finish(), next_actions.Finish(),
          versions.Finish(),     a.rescues.Finish()};
}

class PgRunsStore final : public RunsStore {
 public:
  explicit PgRunsStore(Session& session) : s_(session.impl()) {}

  std::vector<model::ClaimedRun> Claim(const RunClaimRequest& request) override {
    const auto& c = request.claim;
    const pqxx::result rows =
        s_.ExecCommitted(query::kClaimRuns, c.worker, c.limit, static_cast<long long>(c.lease.count()),
                         pg::TextArray(c.tenants), pg::TextArray(request.degraded_ok_policies));
    auto claimed = kRunColumns.ReadAll(rows);
    for (std::size_t i = 0; i < claimed.size(); ++i) {
      kConnectionColumns.Fill(rows[static_cast<pqxx::result::size_type>(i)], claimed[i].connection);
    }
    return claimed;
  }

  std::vector<std::string> Record(const std::string& worker, const std::vector<model::RunOutcome>& outcomes) override {
    if (outcomes.empty()) return {};
    try {
      return RecordBatch(worker, outcomes);
    } catch (const StoreError& e) {
      if (e.kind() != StoreError::Kind::kStatement) throw;
    }
    // One row broke a constraint: record the rest one by one. A row that still
    // fails is written again without its response excerpt and external_ref; if
    // even that fails, it ends dead-lettered as poison with the database's error.
    std::vector<std::string> applied;
    for (const auto& outcome : outcomes) {
      try {
        auto one = RecordBatch(worker, {outcome});
        applied.insert(applied.end(), one.begin(), one.end());
        continue;
      } catch (const StoreError& e) {
        if (e.kind() != StoreError::Kind::kStatement) throw;
      }
      model::RunOutcome bare = outcome;
      bare.response_excerpt.clear();
      bare.external_ref.clear();
      bare.error_summary = "the response could not be stored: " + outcome.error_summary.substr(0, 200);
      try {
        auto one = RecordBatch(worker, {bare});
        applied.insert(applied.end(), one.begin(), one.end());
      } catch (const StoreError& e) {
        if (e.kind() != StoreError::Kind::kStatement) throw;
        model::RunOutcome poison;
        poison.run_id = outcome.run_id;
        poison.expected_owner = outcome.expected_owner;
        poison.rescue = outcome.rescue;
        poison.attempt = outcome.attempt;
        poison.next_status = model::RunStatus::kDeadLettered;
        poison.outcome = "record_error";
        poison.failure_class = model::FailureClass::kPoison;
        poison.error_code = "record_error";
        poison.next_action = model::NextAction::kEscalate;
        poison.error_summary = FirstLineCut(e.what(), 400);
        poison.started_us = outcome.started_us;
        auto one = RecordBatch(worker, {poison});
        applied.insert(applied.end(), one.begin(), one.end());
      }
    }
    return applied;
  }

  int Release(const std::string& worker, const std::vector<store::Release>& releases) override {
    if (releases.empty()) return 0;
    const auto a = pg::ReleaseArrays(releases);
    return s_.ExecCommitted(query::kReleaseRuns, worker, a[0], a[1], a[2])[0]["released"].as<int>();
  }

  int RenewLeases(const std::string& worker, const std::vector<std::string>& ids,
                  std::chrono::milliseconds lease) override {
    if (ids.empty()) return 0;
    return static_cast<int>(
        s_.ExecCommitted(query::kRenewRunLeases, worker, pg::TextArray(ids), static_cast<long long>(lease.count()))
            .affected_rows());
  }

  std::vector<ExpiredRunLease> FindExpired(int limit) override {
    return kExpiredColumns.ReadAll(s_.ExecRead(query::kFindExpiredRunLeases, limit));
  }

  bool DegradeConnection(const std::string& connection_id, const std::string& reason,
                         int credential_version) override {
    return s_.ExecCommitted(query::kDegradeConnection, connection_id, reason,
                            credential_version > 0 ? std::optional<int>(credential_version) : std::nullopt)[0]["degraded"]
        .as<bool>();
  }

  std::vector<model::ProbeTarget> ConnectionsToProbe() override {
    const pqxx::result rows = s_.ExecRead(query::kConnectionsToProbe);
    std::vector<model::ProbeTarget> targets;
    targets.reserve(rows.size());
    for (const auto& row : rows) {
      model::ProbeTarget t;
      kConnectionColumns.Fill(row, t.connection);
      t.since_last_check_ms = row["since_last_check_ms"].as<long long>();
      targets.push_back(std::move(t));
    }
    return targets;
  }

  std::string RecordProbe(const std::string& connection_id, bool ok, std::optional<int> status_code,
                          const std::string& error, int unhealthy_after) override {
    const pqxx::field health =
        s_.ExecCommitted(query::kRecordProbe, connection_id, ok, status_code, error, unhealthy_after)[0]["health"];
    return health.is_null() ? std::string() : health.as<std::string>();
  }

  std::vector<model::PendingRotation> PendingRotations() override {
    const pqxx::result rows = s_.ExecRead(query::kPendingRotations);
    auto rotations = kRotationColumns.ReadAll(rows);
    for (std::size_t i = 0; i < rotations.size(); ++i) {
      const pqxx::row row = rows[static_cast<pqxx::result::size_type>(i)];
      if (row["has_connection"].as<bool>()) {
        model::Connection c;
        kConnectionColumns.Fill(row, c);
        rotations[i].connection = std::move(c);
      }
    }
    return rotations;
  }

  bool FinishRotation(const std::string& version_id, bool ok, const std::string& connection_id,
                      const std::string& error) override {
    return s_.ExecCommitted(query::kFinishRotation, version_id, ok, connection_id, error)[0]["finished"].as<bool>();
  }

  std::vector<model::DueRotation> StartDueRotations(const std::string& worker, int limit) override {
    static const RowMapping<model::DueRotation> kDue = {
        {"credential_id", &model::DueRotation::credential_id},
        {"tenant_id", &model::DueRotation::tenant_id},
        {"rotation_command", &model::DueRotation::command},
    };
    return kDue.ReadAll(s_.ExecCommitted(query::kStartDueRotations, worker, limit));
  }

  std::optional<int> StoreRotationResult(const std::string& credential_id, const std::string& worker,
                                         const std::string& sealed_secret, const std::string& fingerprint) override {
    const pqxx::field v =
        s_.ExecCommitted(query::kStoreRotationResult, credential_id, worker, sealed_secret, fingerprint)[0]["version"];
    if (v.is_null()) return std::nullopt;
    return v.as<int>();
  }

  bool FailRotation(const std::string& credential_id, const std::string& worker, const std::string& reason) override {
    return s_.ExecCommitted(query::kFailRotation, credential_id, worker, reason)[0]["failed"].as<bool>();
  }

  RunQueueMetrics ReadQueueMetrics(std::chrono::milliseconds expiry_window) override {
    const pqxx::row r = s_.ExecRead(query::kRunQueueMetrics, static_cast<long long>(expiry_window.count()))[0];
    RunQueueMetrics m;
    m.due = r["due"].as<long long>();
    m.scheduled = r["scheduled"].as<long long>();
    m.waiting = r["waiting"].as<long long>();
    m.running = r["running"].as<long long>();
    m.dead_lettered = r["dead_lettered"].as<long long>();
    m.unhealthy_connections = r["unhealthy_connections"].as<long long>();
    m.degraded_connections = r["degraded_connections"].as<long long>();
    m.credentials_expiring = r["credentials_expiring"].as<long long>();
    m.open_escalations = r["open_escalations"].as<long long>();
    return m;
  }

  ShiftedSchedules ShiftSchedules(const ScheduleShift& shift) override {
    return pg::ExecShift(s_, query::kShiftRunSchedules, shift);
  }

  int Prune(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
            int batch) override {
    return s_.ExecCommitted(query::kPruneRuns, static_cast<long long>(completed_retention.count()),
                            static_cast<long long>(dead_letter_retention.count()), batch)[0]["removed"]
        .as<int>();
  }

 private:
  std::vector<std::string> RecordBatch(const std::string& worker, const std::vector<model::RunOutcome>& outcomes) {
    const auto p = OutcomeArrays(worker, outcomes);
    const pqxx::result rows = s_.ExecCommitted(query::kRecordRunOutcomes, worker, p[0], p[1], p[2], p[3], p[4], p[5],
                                               p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15], p[16],
                                               p[17]);
    std::vector<std::string> applied;
    applied.reserve(rows.size());
    for (const auto& row : rows) applied.push_back(row["id"].as<std::string>());
    return applied;
  }

  Session::Impl& s_;
};

}  // namespace

std::unique_ptr<RunsStore> NewRunsStore(Session& session) { return std::make_unique<PgRunsStore>(session); }

}  // namespace pgcourier::store

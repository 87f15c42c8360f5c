// Store methods for integration runs. The statements are in run_statements.cpp;
// the transitions, failures, escalations and outbox events they cause are in
// sql/schema/40_integrations.sql.
#include <pqxx/pqxx>
#include <sstream>

#include "store/statements.hpp"
#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace pgcourier::store {
namespace {

using detail::ArrayBuilder;
using detail::Translate;

constexpr int kConnectionColumnCount = 19;

// Reads the columns of kConnectionColumns starting at `first`.
model::Connection ReadConnection(const pqxx::row& row, int first) {
  int i = first;
  auto text = [&] { return row[i++].as<std::string>(); };
  auto integer = [&] { return row[i++].as<int>(); };
  model::Connection c;
  c.id = text();
  c.tenant_id = text();
  c.status = text();
  c.base_url = text();
  c.auth_mode = text();
  c.api_key_header = text();
  c.token_url = text();
  c.client_id = text();
  c.scopes = text();
  c.policy_name = text();
  c.max_in_flight = integer();
  c.rate_per_second = row[i++].as<double>();
  c.rate_burst = integer();
  c.credential_id = text();
  c.credential_version = integer();
  c.sealed_secret = text();
  c.health_check_method = text();
  c.health_check_path = text();
  c.health_check_expected_status = integer();
  return c;
}

// The first line of a database error, at most max_bytes, cut on a UTF-8
// character boundary (the server's DETAIL lines quote row contents).
std::string FirstLineCut(std::string_view text, std::size_t max_bytes) {
  text = text.substr(0, text.find('\n'));
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut));
}

std::string TextArray(const std::vector<std::string>& items) {
  ArrayBuilder array;
  for (const auto& item : items) array.AddText(item);
  return array.Finish();
}

// The columns of courier.record_run_outcomes, as array literals.
std::vector<std::string> RunOutcomeArrays(const std::vector<model::RunOutcome>& outcomes) {
  ArrayBuilder ids, attempts, owners, statuses, delays, codes, outcome_names, classes, error_codes, retryable,
      summaries, excerpts, started, durations, external_refs, next_actions, versions;
  auto text_or_null = [](ArrayBuilder& array, const std::string& value) {
    if (value.empty()) array.AddNull(); else array.AddText(value);
  };
  for (const auto& o : outcomes) {
    ids.AddText(o.run_id);
    attempts.AddNumber(o.attempt);
    owners.AddText(o.expected_owner);
    statuses.AddText(model::ToString(o.next_status));
    if (o.retry_delay_ms) delays.AddNumber(*o.retry_delay_ms); else delays.AddNull();
    if (o.status_code) codes.AddNumber(*o.status_code); else codes.AddNull();
    outcome_names.AddText(o.outcome);
    text_or_null(classes, std::string(model::ToString(o.failure_class)));
    text_or_null(error_codes, o.error_code);
    retryable.AddBool(o.retryable);
    text_or_null(summaries, o.error_summary);
    text_or_null(excerpts, o.response_excerpt);
    started.AddNumber(o.started_us);
    std::ostringstream duration;
    duration.precision(6);
    duration << std::fixed << o.duration_ms;
    durations.AddText(duration.str());
    text_or_null(external_refs, o.external_ref);
    text_or_null(next_actions, std::string(model::ToString(o.next_action)));
    if (o.credential_version > 0) versions.AddNumber(o.credential_version); else versions.AddNull();
  }
  return {ids.Finish(), attempts.Finish(), owners.Finish(), statuses.Finish(), delays.Finish(), codes.Finish(),
          outcome_names.Finish(), classes.Finish(), error_codes.Finish(), retryable.Finish(), summaries.Finish(),
          excerpts.Finish(), started.Finish(), durations.Finish(), external_refs.Finish(), next_actions.Finish(),
          versions.Finish()};
}

}  // namespace

std::vector<std::string> Store::Impl::ExecRecordRuns(pqxx::work& txn, const std::string& worker,
                                                     const std::vector<model::RunOutcome>& outcomes) {
  const auto p = RunOutcomeArrays(outcomes);
  const pqxx::result rows = Timed(kStmtRecordRunOutcomes, [&] {
    return txn.exec_prepared(kStmtRecordRunOutcomes, worker, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                             p[9], p[10], p[11], p[12], p[13], p[14], p[15], p[16]);
  });
  std::vector<std::string> applied;
  applied.reserve(rows.size());
  for (const auto& row : rows) applied.push_back(row[0].as<std::string>());
  return applied;
}

std::vector<model::ClaimedRun> Store::ClaimDueRuns(const std::string& worker, int limit,
                                                   std::chrono::milliseconds lease,
                                                   const std::vector<std::string>& tenants,
                                                   const std::vector<std::string>& degraded_ok_policies) {
  return Translate(kStmtClaimRuns, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result rows = impl_->Timed(kStmtClaimRuns, [&] {
      return txn.exec_prepared(kStmtClaimRuns, worker, limit, static_cast<long long>(lease.count()),
                               TextArray(tenants), TextArray(degraded_ok_policies));
    });
    txn.commit();
    std::vector<model::ClaimedRun> claimed;
    claimed.reserve(rows.size());
    for (const auto& row : rows) {
      model::ClaimedRun r;
      r.id = row[0].as<std::string>();
      r.tenant_id = row[1].as<std::string>();
      r.connection_id = row[2].as<std::string>();
      r.operation = row[3].as<std::string>();
      r.method = row[4].as<std::string>();
      r.path = row[5].as<std::string>();
      r.headers_json = row[6].as<std::string>();
      if (!row[7].is_null()) r.body = row[7].as<std::string>();
      r.idempotency_key = row[8].as<std::string>();
      r.external_ref_pointer = row[9].as<std::string>();
      r.trace_id = row[10].as<std::string>();
      r.last_error_code = row[11].as<std::string>();
      r.previous_attempts = row[12].as<int>();
      r.rate_limited_attempts = row[13].as<int>();
      r.attempt_budget_base = row[14].as<int>();
      r.connection_found = row[15].as<bool>();
      r.connection = ReadConnection(row, 16);
      claimed.push_back(std::move(r));
    }
    return claimed;
  });
}

std::vector<std::string> Store::RecordRunOutcomes(const std::string& worker,
                                                  const std::vector<model::RunOutcome>& outcomes) {
  if (outcomes.empty()) return {};
  try {
    return Translate(kStmtRecordRunOutcomes, [&] {
      pqxx::work txn(impl_->conn);
      auto applied = impl_->ExecRecordRuns(txn, worker, outcomes);
      txn.commit();
      return applied;
    });
  } catch (const StoreError& e) {
    if (e.kind() != StoreError::Kind::kStatement) throw;
  }
  // One row broke a constraint: record the rest one by one. A row that still
  // fails is written again without its response excerpt and external_ref;
  // if even that fails, it ends dead-lettered as poison with the database's
  // error (first line, cut on a character boundary) as its reason.
  std::vector<std::string> applied;
  for (const auto& outcome : outcomes) {
    try {
      auto one = RecordOneRunOutcome(worker, outcome);
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
      auto one = RecordOneRunOutcome(worker, bare);
      applied.insert(applied.end(), one.begin(), one.end());
    } catch (const StoreError& e) {
      if (e.kind() != StoreError::Kind::kStatement) throw;
      model::RunOutcome poison;
      poison.run_id = outcome.run_id;
      poison.expected_owner = outcome.expected_owner;
      poison.attempt = outcome.attempt;
      poison.next_status = model::RunStatus::kDeadLettered;
      poison.outcome = "record_error";
      poison.failure_class = model::FailureClass::kPoison;
      poison.error_code = "record_error";
      poison.next_action = model::NextAction::kEscalate;
      poison.error_summary = FirstLineCut(e.what(), 400);
      poison.started_us = outcome.started_us;
      auto one = RecordOneRunOutcome(worker, poison);
      applied.insert(applied.end(), one.begin(), one.end());
    }
  }
  return applied;
}

std::vector<std::string> Store::RecordOneRunOutcome(const std::string& worker, const model::RunOutcome& outcome) {
  return Translate(kStmtRecordRunOutcomes, [&] {
    pqxx::work txn(impl_->conn);
    auto applied = impl_->ExecRecordRuns(txn, worker, {outcome});
    txn.commit();
    return applied;
  });
}

int Store::ReleaseRuns(const std::string& worker, const std::vector<Release>& releases) {
  if (releases.empty()) return 0;
  return Translate(kStmtReleaseRuns, [&] {
    const auto arrays = detail::ReleaseArrays(releases);
    pqxx::work txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtReleaseRuns, [&] {
      return txn.exec_prepared(kStmtReleaseRuns, worker, arrays[0], arrays[1], arrays[2]);
    });
    txn.commit();
    return r[0][0].as<int>();
  });
}

int Store::RescueExpiredRuns(const std::string& worker, int limit,
                             const std::function<model::RunOutcome(const ExpiredRunLease&)>& decide) {
  return Translate(kStmtFindExpiredRunLeases, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result rows = impl_->Timed(kStmtFindExpiredRunLeases, [&] {
      return txn.exec_prepared(kStmtFindExpiredRunLeases, limit);
    });
    if (rows.empty()) return 0;
    std::vector<model::RunOutcome> outcomes;
    for (const auto& row : rows) {
      ExpiredRunLease lease{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                            row[3].as<int>(), row[4].as<int>(), row[5].as<int>()};
      auto outcome = decide(lease);
      outcome.expected_owner = lease.lease_owner;
      outcomes.push_back(std::move(outcome));
    }
    const auto applied = impl_->ExecRecordRuns(txn, worker, outcomes);
    txn.commit();
    return static_cast<int>(applied.size());
  });
}

bool Store::DegradeConnection(const std::string& connection_id, const std::string& reason, int credential_version) {
  return Translate(kStmtDegradeConnection, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtDegradeConnection, [&] {
      return txn.exec_prepared(kStmtDegradeConnection, connection_id, reason,
                               credential_version > 0 ? std::optional<int>(credential_version) : std::nullopt);
    });
    txn.commit();
    return r[0][0].as<bool>();
  });
}

std::vector<model::ProbeTarget> Store::ConnectionsToProbe() {
  return Translate(kStmtConnectionsToProbe, [&] {
    pqxx::read_transaction txn(impl_->conn);
    const pqxx::result rows =
        impl_->Timed(kStmtConnectionsToProbe, [&] { return txn.exec_prepared(kStmtConnectionsToProbe); });
    std::vector<model::ProbeTarget> targets;
    for (const auto& row : rows) {
      targets.push_back({ReadConnection(row, 0), row[kConnectionColumnCount].as<long long>()});
    }
    return targets;
  });
}

std::string Store::RecordProbe(const std::string& connection_id, bool ok, std::optional<int> status_code,
                               const std::string& error, int unhealthy_after) {
  return Translate(kStmtRecordProbe, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtRecordProbe, [&] {
      return txn.exec_prepared(kStmtRecordProbe, connection_id, ok, status_code, error, unhealthy_after);
    });
    txn.commit();
    return r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
  });
}

std::vector<model::PendingRotation> Store::PendingRotations() {
  return Translate(kStmtPendingRotations, [&] {
    pqxx::read_transaction txn(impl_->conn);
    const pqxx::result rows =
        impl_->Timed(kStmtPendingRotations, [&] { return txn.exec_prepared(kStmtPendingRotations); });
    std::vector<model::PendingRotation> rotations;
    for (const auto& row : rows) {
      model::PendingRotation p;
      p.version_id = row[0].as<std::string>();
      p.version = row[1].as<int>();
      p.credential_id = row[2].as<std::string>();
      p.tenant_id = row[3].as<std::string>();
      if (row[4].as<bool>()) p.connection = ReadConnection(row, 5);
      rotations.push_back(std::move(p));
    }
    return rotations;
  });
}

bool Store::FinishRotation(const std::string& version_id, bool ok, const std::string& connection_id,
                           const std::string& error) {
  return Translate(kStmtFinishRotation, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtFinishRotation, [&] {
      return txn.exec_prepared(kStmtFinishRotation, version_id, ok, connection_id, error);
    });
    txn.commit();
    return r[0][0].as<bool>();
  });
}

RunQueueMetrics Store::ReadRunQueueMetrics(std::chrono::milliseconds expiry_window) {
  return Translate(kStmtRunQueueMetrics, [&] {
    pqxx::read_transaction txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtRunQueueMetrics, [&] {
      return txn.exec_prepared(kStmtRunQueueMetrics, static_cast<long long>(expiry_window.count()));
    });
    int i = 0;
    auto next = [&] { return r[0][i++].as<long long>(); };
    RunQueueMetrics m;
    m.due = next();
    m.scheduled = next();
    m.waiting = next();
    m.running = next();
    m.dead_lettered = next();
    m.unhealthy_connections = next();
    m.degraded_connections = next();
    m.credentials_expiring = next();
    m.open_escalations = next();
    return m;
  });
}

int Store::PruneRuns(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
                     int batch) {
  return Translate(kStmtPruneRuns, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtPruneRuns, [&] {
      return txn.exec_prepared(kStmtPruneRuns, static_cast<long long>(completed_retention.count()),
                               static_cast<long long>(dead_letter_retention.count()), batch);
    });
    txn.commit();
    return r[0][0].as<int>();
  });
}

}  // namespace pgcourier::store

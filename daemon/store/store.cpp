#include "store/store.hpp"

#include <chrono>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <utility>

#include "store/migrations.hpp"
#include "store/statements.hpp"
#include "store/store_impl.hpp"

namespace pgcourier::store {
namespace {

using detail::ArrayBuilder;
using detail::Translate;

// The outcome columns of kStmtRecordOutcomes, as array literals.
struct OutcomeArrays {
  std::vector<std::string> params;
};

OutcomeArrays BuildOutcomeArrays(const std::vector<model::DeliveryOutcome>& outcomes,
                                 const std::vector<std::string>& expected_owners) {
  ArrayBuilder ids, attempts, owners, statuses, delays, codes, outcome_names, classes, retryable,
      summaries, excerpts, started, durations;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const auto& o = outcomes[i];
    ids.AddText(o.delivery_id);
    attempts.AddNumber(o.attempt);
    owners.AddText(expected_owners[i]);
    statuses.AddText(model::ToString(o.next_status));
    if (o.retry_delay_ms) delays.AddNumber(*o.retry_delay_ms); else delays.AddNull();
    if (o.status_code) codes.AddNumber(*o.status_code); else codes.AddNull();
    outcome_names.AddText(o.outcome);
    if (o.failure_class == model::FailureClass::kNone) classes.AddNull(); else classes.AddText(model::ToString(o.failure_class));
    retryable.AddBool(o.retryable);
    if (o.error_summary.empty()) summaries.AddNull(); else summaries.AddText(o.error_summary);
    if (o.response_excerpt.empty()) excerpts.AddNull(); else excerpts.AddText(o.response_excerpt);
    started.AddNumber(o.started_us);
    std::ostringstream duration;
    duration.precision(6);
    duration << std::fixed << o.duration_ms;
    durations.AddText(duration.str());
  }
  return {{ids.Finish(), attempts.Finish(), owners.Finish(), statuses.Finish(), delays.Finish(), codes.Finish(),
           outcome_names.Finish(), classes.Finish(), retryable.Finish(), summaries.Finish(), excerpts.Finish(),
           started.Finish(), durations.Finish()}};
}

}  // namespace

std::vector<std::string> Store::Impl::ExecRecord(pqxx::work& txn, const std::string& worker,
                                    const std::vector<model::DeliveryOutcome>& outcomes,
                                    const std::vector<std::string>& owners,
                                    std::vector<SubscriptionHealth>* health) {
  const auto arrays = BuildOutcomeArrays(outcomes, owners);
  const auto& p = arrays.params;
  // The outbox rows of this transaction do not NOTIFY at its commit (a lock
  // every notifying commit of the database queues for); the dispatcher sends
  // one coalesced NOTIFY afterwards (Store::NotifyOutbox; courier.notify_when_inserted
  // in sql/schema/10_core.sql).
  txn.exec0("SET LOCAL courier.outbox_notify = 'deferred'");
  pqxx::result rows = Timed(kStmtRecordOutcomes, [&] {
    return txn.exec_prepared(kStmtRecordOutcomes, worker, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                             p[9], p[10], p[11], p[12], delivery_events);
  });
  std::vector<std::string> applied;
  applied.reserve(rows.size());
  for (const auto& row : rows) {
    if (row[0].as<std::string>() == "d") {
      applied.push_back(row[1].as<std::string>());
    } else if (health) {
      health->push_back({row[1].as<std::string>(), row[2].as<int>(), row[3].as<long long>()});
    }
  }
  return applied;
}

Store::Store(const std::string& database_url, StatementObserver observer) {
  Translate("connect", [&] {
    impl_ = std::make_unique<Impl>(database_url, std::move(observer));
    return 0;
  });
}

Store::~Store() = default;

SchemaStatus Store::CheckSchema() {
  return Translate(kStmtSchemaVersions, [&] {
    SchemaStatus status;
    const auto& migrations = EmbeddedMigrations();
    status.required_version = migrations.empty() ? 0 : migrations.back().version;
    pqxx::read_transaction txn(impl_->conn);
    std::set<int> applied;
    const pqxx::result exists = txn.exec("SELECT to_regclass('courier.schema_migrations') IS NOT NULL");
    if (exists[0][0].as<bool>()) {
      for (const auto& row : txn.exec("SELECT version FROM courier.schema_migrations")) {
        applied.insert(row[0].as<int>());
      }
    }
    for (const auto& m : migrations) {
      if (applied.count(m.version)) {
        status.current_version = std::max(status.current_version, m.version);
      } else {
        char label[16];
        std::snprintf(label, sizeof label, "%03d_", m.version);
        status.missing.push_back(label + m.name);
      }
    }
    return status;
  });
}

void Store::SetDeliveryEvents(const std::string& mode) { impl_->delivery_events = mode; }

void Store::Listen() {
  Translate("listen", [&] {
    impl_->receiver = std::make_unique<detail::ChannelCounter>(impl_->conn, kDeliveriesChannel, &impl_->notifications);
    impl_->run_receiver = std::make_unique<detail::ChannelCounter>(impl_->conn, kRunsChannel, &impl_->run_notifications);
    return 0;
  });
}

int Store::socket() const { return impl_->conn.sock(); }

int Store::TakeNotifications() {
  return Translate("notifications", [&] {
    impl_->conn.get_notifs();
    return std::exchange(impl_->notifications, 0);
  });
}

int Store::TakeRunNotifications() { return std::exchange(impl_->run_notifications, 0); }

void Store::NotifyOutbox() {
  Translate("notify_outbox", [&] {
    pqxx::nontransaction txn(impl_->conn);
    txn.exec_params("SELECT pg_notify($1, '')", kOutboxChannel);
    return 0;
  });
}

std::vector<model::ClaimedDelivery> Store::ClaimDue(const std::string& worker, int limit,
                                                    std::chrono::milliseconds lease,
                                                    const std::vector<std::string>& tenants) {
  return Translate(kStmtClaimDue, [&] {
    pqxx::work txn(impl_->conn);
    auto claimed = impl_->ExecClaim(txn, worker, ClaimRequest{limit, lease, tenants});
    txn.commit();
    return claimed;
  });
}

std::vector<model::ClaimedDelivery> Store::Impl::ExecClaim(pqxx::work& txn, const std::string& worker,
                                                           const ClaimRequest& claim) {
  std::vector<const std::string*> tenant_ptrs;
  tenant_ptrs.reserve(claim.tenants.size());
  for (const auto& t : claim.tenants) tenant_ptrs.push_back(&t);
  const std::string tenants_literal = ToTextArrayLiteral(tenant_ptrs);
  const pqxx::result rows = Timed(kStmtClaimDue, [&] {
    return txn.exec_prepared(kStmtClaimDue, worker, claim.limit, static_cast<long long>(claim.lease.count()),
                             tenants_literal);
  });
  std::vector<model::ClaimedDelivery> claimed;
  claimed.reserve(rows.size());
  for (const auto& row : rows) {
    model::ClaimedDelivery d;
    d.id = row[0].as<std::string>();
    d.tenant_id = row[1].as<std::string>();
    d.event_id = row[2].as<std::string>();
    d.subscription_id = row[3].as<std::string>();
    d.previous_attempts = row[4].as<int>();
    d.event_type = row[5].as<std::string>();
    d.payload_json = row[6].as<std::string>();
    d.trace_id = row[7].as<std::string>();
    d.event_created_at = row[8].as<std::string>();
    d.event_created_us = row[9].as<long long>();
    d.url = row[10].as<std::string>();
    d.policy_name = row[11].as<std::string>();
    d.subscription_active = row[12].as<bool>();
    d.subscription_paused = row[14].as<bool>();
    d.attempt_budget_base = row[15].as<int>();
    d.ordering_key = row[16].as<std::string>();
    d.max_in_flight = row[17].as<int>();
    d.rate_per_second = row[18].as<double>();
    d.rate_burst = row[19].as<int>();
    d.tenant_consistent = row[20].as<bool>();
    const auto secrets = row[13].as<std::string>();
    std::size_t start = 0;
    while (start < secrets.size()) {
      std::size_t end = secrets.find(' ', start);
      if (end == std::string::npos) end = secrets.size();
      if (end > start) d.sealed_secrets.push_back(secrets.substr(start, end - start));
      start = end + 1;
    }
    claimed.push_back(std::move(d));
  }
  return claimed;
}

std::vector<std::string> Store::RecordOutcomes(const std::string& worker,
                                               const std::vector<model::DeliveryOutcome>& outcomes,
                                               std::vector<SubscriptionHealth>* health) {
  if (outcomes.empty()) return {};
  const std::vector<std::string> owners(outcomes.size(), worker);
  // Two daemons updating the counters of the same subscriptions can deadlock;
  // the loser retries its whole batch.
  for (int tries = 1;; ++tries) {
    try {
      return Translate(kStmtRecordOutcomes, [&] {
        pqxx::work txn(impl_->conn);
        std::vector<SubscriptionHealth> batch_health;
        auto applied = impl_->ExecRecord(txn, worker, outcomes, owners, &batch_health);
        txn.commit();
        if (health) health->insert(health->end(), batch_health.begin(), batch_health.end());
        return applied;
      });
    } catch (const StoreError& e) {
      if (e.kind() == StoreError::Kind::kConflict && tries < 5) continue;
      if (e.kind() != StoreError::Kind::kStatement && e.kind() != StoreError::Kind::kConflict) throw;
      break;
    }
  }
  // A row of the batch broke a constraint: find it by writing rows one by one,
  // so one bad row never blocks its neighbours.
  std::vector<std::string> applied;
  for (const auto& outcome : outcomes) {
    try {
      auto one = Translate(kStmtRecordOutcomes, [&] {
        pqxx::work txn(impl_->conn);
        auto ids = impl_->ExecRecord(txn, worker, {outcome}, {worker}, health);
        txn.commit();
        return ids;
      });
      applied.insert(applied.end(), one.begin(), one.end());
    } catch (const StoreError& e) {
      if (e.kind() == StoreError::Kind::kConnectionLost) throw;
      Translate(kStmtQuarantine, [&] {
        pqxx::work txn(impl_->conn);
        std::string reason = std::string("outcome could not be recorded: ") + e.what();
        if (reason.size() > 500) {
          // Cut on a character boundary: the server's message quotes the row's UTF-8 text.
          std::size_t cut = 500;
          while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
          reason.resize(cut);
        }
        const pqxx::result r = txn.exec_prepared(kStmtQuarantine, worker, outcome.delivery_id,
                                                 outcome.attempt, pqxx::to_string(reason));
        txn.commit();
        if (!r.empty()) applied.push_back(outcome.delivery_id);
        return 0;
      });
    }
  }
  return applied;
}

int Store::RescueExpired(const std::string& worker, int limit,
                         const std::function<model::DeliveryOutcome(const ExpiredLease&)>& decide) {
  return Translate(kStmtFindExpiredLeases, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result rows = impl_->Timed(kStmtFindExpiredLeases, [&] {
      return txn.exec_prepared(kStmtFindExpiredLeases, limit);
    });
    if (rows.empty()) return 0;
    std::vector<model::DeliveryOutcome> outcomes;
    std::vector<std::string> owners;
    for (const auto& row : rows) {
      ExpiredLease lease{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                         row[3].as<int>(), row[4].as<int>(), row[5].as<std::string>()};
      outcomes.push_back(decide(lease));
      owners.push_back(lease.lease_owner);
    }
    const auto applied = impl_->ExecRecord(txn, worker, outcomes, owners, nullptr);
    txn.commit();
    return static_cast<int>(applied.size());
  });
}

int Store::ReleaseLeases(const std::string& worker, const std::vector<Release>& releases) {
  if (releases.empty()) return 0;
  return Translate(kStmtReleaseLeases, [&] {
    const auto arrays = detail::ReleaseArrays(releases);
    pqxx::work txn(impl_->conn);
    const pqxx::result rows = impl_->Timed(kStmtReleaseLeases, [&] {
      return txn.exec_prepared(kStmtReleaseLeases, worker, arrays[0], arrays[1], arrays[2]);
    });
    txn.commit();
    return static_cast<int>(rows.affected_rows());
  });
}

void Store::PauseSubscription(const std::string& subscription_id, const std::string& reason) {
  Translate(kStmtPauseSubscription, [&] {
    pqxx::work txn(impl_->conn);
    impl_->Timed(kStmtPauseSubscription,
                 [&] { return txn.exec_prepared(kStmtPauseSubscription, subscription_id, reason); });
    txn.commit();
    return 0;
  });
}

void Store::DisableSubscription(const std::string& subscription_id, const std::string& reason) {
  Translate(kStmtDisableSubscription, [&] {
    pqxx::work txn(impl_->conn);
    impl_->Timed(kStmtDisableSubscription,
                 [&] { return txn.exec_prepared(kStmtDisableSubscription, subscription_id, reason); });
    txn.commit();
    return 0;
  });
}

bool Store::TryBecomeLeader() {
  return Translate(kStmtTryLeadership, [&] {
    pqxx::nontransaction txn(impl_->conn);
    return txn.exec_prepared(kStmtTryLeadership)[0][0].as<bool>();
  });
}

QueueMetrics Store::ReadQueueMetrics() {
  return Translate(kStmtQueueMetrics, [&] {
    pqxx::read_transaction txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtQueueMetrics, [&] { return txn.exec_prepared(kStmtQueueMetrics); });
    QueueMetrics m;
    m.due = r[0][0].as<long long>();
    m.scheduled = r[0][1].as<long long>();
    m.held = r[0][2].as<long long>();
    m.delivering = r[0][3].as<long long>();
    m.dead_lettered = r[0][4].as<long long>();
    m.paused_subscriptions = r[0][5].as<long long>();
    m.oldest_due_seconds = r[0][6].as<double>();
    return m;
  });
}

int Store::Prune(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
                 int batch) {
  return Translate(kStmtPrune, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtPrune, [&] {
      return txn.exec_prepared(kStmtPrune, static_cast<long long>(completed_retention.count()),
                               static_cast<long long>(dead_letter_retention.count()), batch);
    });
    txn.commit();
    return r[0][0].as<int>();
  });
}

int Store::WakeHeld() {
  return Translate(kStmtWakeHeld, [&] {
    pqxx::work txn(impl_->conn);
    const pqxx::result r = impl_->Timed(kStmtWakeHeld, [&] { return txn.exec_prepared(kStmtWakeHeld); });
    txn.commit();
    return static_cast<int>(r.affected_rows());
  });
}

std::vector<std::string> Migrate(const std::string& database_url) {
  return Translate("migrate", [&] {
    pqxx::connection conn(database_url);
    // Session-level lock: concurrent migrators wait for each other, and the
    // second one finds everything applied.
    pqxx::nontransaction(conn).exec("SELECT pg_advisory_lock(hashtext('pgcourier.migrate'))");
    {
      pqxx::work txn(conn);
      txn.exec("CREATE SCHEMA IF NOT EXISTS courier");
      txn.exec(
          "CREATE TABLE IF NOT EXISTS courier.schema_migrations ("
          " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
      txn.commit();
    }
    std::vector<std::string> applied;
    for (const auto& m : EmbeddedMigrations()) {
      pqxx::work txn(conn);
      const pqxx::result done =
          txn.exec_params("SELECT 1 FROM courier.schema_migrations WHERE version = $1", m.version);
      if (!done.empty()) continue;
      char label[16];
      std::snprintf(label, sizeof label, "%03d_", m.version);
      try {
        txn.exec(m.sql);
      } catch (const pqxx::sql_error& e) {
        throw StoreError(StoreError::Kind::kSchema,
                         std::string("migration ") + label + m.name + " failed: " + e.what());
      }
      txn.exec_params("INSERT INTO courier.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name);
      txn.commit();
      applied.push_back(label + m.name);
    }
    pqxx::nontransaction(conn).exec("SELECT pg_advisory_unlock(hashtext('pgcourier.migrate'))");
    return applied;
  });
}

std::string ToTextArrayLiteral(const std::vector<const std::string*>& items) {
  ArrayBuilder builder;
  for (const auto* item : items) {
    if (item) builder.AddText(*item); else builder.AddNull();
  }
  return builder.Finish();
}

}  // namespace pgcourier::store

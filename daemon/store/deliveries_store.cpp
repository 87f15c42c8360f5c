#include "store/deliveries_store.hpp"

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
using pg::Translate;

const RowMapping<model::ClaimedDelivery> kClaimedColumns = {
    {"id", &model::ClaimedDelivery::id},
    {"tenant_id", &model::ClaimedDelivery::tenant_id},
    {"event_id", &model::ClaimedDelivery::event_id},
    {"subscription_id", &model::ClaimedDelivery::subscription_id},
    {"previous_attempts", &model::ClaimedDelivery::previous_attempts},
    {"event_type", &model::ClaimedDelivery::event_type},
    {"trace_id", &model::ClaimedDelivery::trace_id},
    {"event_created_at", &model::ClaimedDelivery::event_created_at},
    {"event_created_us", &model::ClaimedDelivery::event_created_us},
    {"url", &model::ClaimedDelivery::url},
    {"policy_name", &model::ClaimedDelivery::policy_name},
    {"subscription_active", &model::ClaimedDelivery::subscription_active},
    {"subscription_paused", &model::ClaimedDelivery::subscription_paused},
    {"attempt_budget_base", &model::ClaimedDelivery::attempt_budget_base},
    {"ordering_key", &model::ClaimedDelivery::ordering_key},
    {"max_in_flight", &model::ClaimedDelivery::max_in_flight},
    {"rate_per_second", &model::ClaimedDelivery::rate_per_second},
    {"rate_burst", &model::ClaimedDelivery::rate_burst},
    {"tenant_consistent", &model::ClaimedDelivery::tenant_consistent},
    {"payload_bytes", &model::ClaimedDelivery::payload_bytes},
};

const RowMapping<ExpiredLease> kExpiredColumns = {
    {"delivery_id", &ExpiredLease::delivery_id},
    {"lease_owner", &ExpiredLease::lease_owner},
    {"policy_name", &ExpiredLease::policy_name},
    {"previous_attempts", &ExpiredLease::previous_attempts},
    {"attempt_budget_base", &ExpiredLease::attempt_budget_base},
    {"subscription_id", &ExpiredLease::subscription_id},
};

// The space-separated sealed secrets of claim_due, newest first.
std::vector<std::string> SplitSecrets(const std::string& secrets) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < secrets.size()) {
    std::size_t end = secrets.find(' ', start);
    if (end == std::string::npos) end = secrets.size();
    if (end > start) out.push_back(secrets.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// The columns of record_outcomes ($2..$14, then $16), as array literals.
std::vector<std::string> OutcomeArrays(const std::string& worker, const std::vector<model::DeliveryOutcome>& outcomes) {
  ArrayBuilder ids, statuses;
  AttemptColumns a;
  for (const auto& o : outcomes) {
    ids.AddText(o.delivery_id);
    statuses.AddText(model::ToString(o.next_status));
    a.Add(o, worker);
  }
  return {ids.Finish(),       a.attempts.Finish(), a.owners.Finish(),   statuses.Finish(),  a.delays.Finish(),
          a.codes.Finish(),   a.names.Finish(),    a.classes.Finish(),  a.retryable.Finish(), a.summaries.Finish(),
          a.excerpts.Finish(), a.started.Finish(), a.durations.Finish(), a.rescues.Finish()};
}

// A database error as a stored reason: at most 500 bytes, cut on a character
// boundary (the server's message quotes the row's UTF-8 text).
std::string QuarantineReason(const std::string& error) {
  return std::string(base::Utf8Prefix("outcome could not be recorded: " + error, 500));
}

class PgDeliveriesStore final : public DeliveriesStore {
 public:
  PgDeliveriesStore(Session& session, std::string delivery_events)
      : s_(session.impl()), delivery_events_(std::move(delivery_events)) {}

  ClaimedDeliveries Claim(const DeliveryClaimRequest& request) override {
    const auto& c = request.claim;
    pg::ArrayBuilder slots, floors;
    for (const int n : request.window_slots) slots.AddNumber(n);
    for (const std::int64_t us : request.floor_due_us) floors.AddNumber(us);
    const std::optional<long long> other_floor =
        request.other_floor_us ? std::optional<long long>(*request.other_floor_us) : std::nullopt;
    const pqxx::result rows =
        s_.ExecCommitted(query::kClaimDue, c.worker, c.limit, static_cast<long long>(c.lease.count()),
                         pg::TextArray(c.tenants), static_cast<long long>(request.max_bytes),
                         pg::TextArray(request.window_subscriptions), slots.Finish(), request.default_slots,
                         pg::TextArray(request.excluded_subscriptions), pg::TextArray(request.excluded_tenants),
                         request.resume_after, static_cast<long long>(request.max_first_bytes),
                         pg::TextArray(request.floor_subscriptions), floors.Finish(), other_floor);
    ClaimedDeliveries claimed;
    claimed.rows = kClaimedColumns.ReadAll(rows);
    const auto secrets = rows.column_number("sealed_secrets"), payload = rows.column_number("payload_json"),
               retry = rows.column_number("retry"), due = rows.column_number("due_us");
    for (std::size_t i = 0; i < claimed.rows.size(); ++i) {
      const pqxx::row row = rows[static_cast<pqxx::result::size_type>(i)];
      auto& d = claimed.rows[i];
      if (const pqxx::field f = row[secrets]; !f.is_null()) d.sealed_secrets = SplitSecrets(f.as<std::string>());
      // Read with room for the envelope (model::EnvelopeRoom): one buffer per payload.
      const pqxx::field p = row[payload];
      d.payload_json.reserve(p.size() + model::EnvelopeRoom(d.event_type.size()));
      d.payload_json.append(p.c_str(), p.size());
      if (!row[retry].as<bool>()) claimed.first_attempts.emplace_back(d.subscription_id, row[due].as<std::int64_t>());
    }
    if (!rows.empty()) claimed.candidates = rows[0]["candidates"].as<int>();
    return claimed;
  }

  RecordedOutcomes Record(const std::string& worker, const std::vector<model::DeliveryOutcome>& outcomes) override {
    if (outcomes.empty()) return {};
    // Two daemons updating the counters of the same subscriptions can
    // deadlock; the loser retries its whole batch.
    for (int tries = 1;; ++tries) {
      try {
        return RecordBatch(worker, outcomes);
      } catch (const StoreError& e) {
        if (e.kind() == StoreError::Kind::kConflict && tries < 5) continue;
        if (e.kind() != StoreError::Kind::kStatement && e.kind() != StoreError::Kind::kConflict) throw;
        break;
      }
    }
    // A row of the batch broke a constraint: find it by writing rows one by
    // one, so one bad row never blocks its neighbours.
    RecordedOutcomes recorded;
    for (const auto& outcome : outcomes) {
      try {
        auto one = RecordBatch(worker, {outcome});
        recorded.applied.insert(recorded.applied.end(), one.applied.begin(), one.applied.end());
        recorded.health.insert(recorded.health.end(), one.health.begin(), one.health.end());
      } catch (const StoreError& e) {
        if (e.kind() == StoreError::Kind::kConnectionLost) throw;
        const std::string owner = outcome.expected_owner.empty() ? worker : outcome.expected_owner;
        const pqxx::result r = s_.ExecCommitted(query::kQuarantineOutcome, owner, outcome.delivery_id,
                                                outcome.attempt, QuarantineReason(e.what()));
        if (!r.empty()) recorded.applied.push_back(outcome.delivery_id);
      }
    }
    return recorded;
  }

  int Release(const std::string& worker, const std::vector<store::Release>& releases) override {
    if (releases.empty()) return 0;
    const auto a = pg::ReleaseArrays(releases);
    return static_cast<int>(s_.ExecCommitted(query::kReleaseLeases, worker, a[0], a[1], a[2]).affected_rows());
  }

  int RenewLeases(const std::string& worker, const std::vector<std::string>& ids,
                  std::chrono::milliseconds lease) override {
    if (ids.empty()) return 0;
    return static_cast<int>(
        s_.ExecCommitted(query::kRenewLeases, worker, pg::TextArray(ids), static_cast<long long>(lease.count()))
            .affected_rows());
  }

  std::vector<ExpiredLease> FindExpired(int limit) override {
    return kExpiredColumns.ReadAll(s_.ExecRead(query::kFindExpiredLeases, limit));
  }

  int WakeHeld() override { return static_cast<int>(s_.ExecCommitted(query::kWakeHeld).affected_rows()); }

  void PauseSubscription(const std::string& subscription_id, const std::string& reason) override {
    s_.ExecCommitted(query::kPauseSubscription, subscription_id, reason);
  }

  void DisableSubscription(const std::string& subscription_id, const std::string& reason) override {
    s_.ExecCommitted(query::kDisableSubscription, subscription_id, reason);
  }

  int MaintainKpis(int max_minutes) override {
    return s_.ExecCommitted(query::kMaintainKpis, max_minutes)[0]["minutes"].as<int>();
  }

  QueueMetrics ReadQueueMetrics() override {
    const pqxx::row r = s_.ExecRead(query::kQueueMetrics)[0];
    QueueMetrics m;
    m.due = r["due"].as<long long>();
    m.scheduled = r["scheduled"].as<long long>();
    m.held = r["held"].as<long long>();
    m.delivering = r["delivering"].as<long long>();
    m.dead_lettered = r["dead_lettered"].as<long long>();
    m.paused_subscriptions = r["paused_subscriptions"].as<long long>();
    m.oldest_due_seconds = r["oldest_due_seconds"].as<double>();
    return m;
  }

  ShiftedSchedules ShiftSchedules(const ScheduleShift& shift) override {
    return pg::ExecShift(s_, query::kShiftSchedules, shift);
  }

  int Prune(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
            int batch) override {
    return s_.ExecCommitted(query::kPrune, static_cast<long long>(completed_retention.count()),
                            static_cast<long long>(dead_letter_retention.count()), batch)[0]["removed"]
        .as<int>();
  }

 private:
  RecordedOutcomes RecordBatch(const std::string& worker, const std::vector<model::DeliveryOutcome>& outcomes) {
    const auto p = OutcomeArrays(worker, outcomes);
    return s_.Guarded(query::kRecordOutcomes, [&] {
      pqxx::work txn(s_.conn);
      s_.Exec(txn, query::kBeginOutcomes);
      const pqxx::result rows = s_.Exec(txn, query::kRecordOutcomes, worker, p[0], p[1], p[2], p[3], p[4], p[5],
                                        p[6], p[7], p[8], p[9], p[10], p[11], p[12], delivery_events_, p[13]);
      txn.commit();
      RecordedOutcomes recorded;
      recorded.applied.reserve(rows.size());
      const auto kind = rows.column_number("kind"), id = rows.column_number("id"),
                 failures = rows.column_number("consecutive_failures"), failing = rows.column_number("failing_ms");
      for (const auto& row : rows) {
        if (row[kind].as<std::string>() == "d") {
          recorded.applied.push_back(row[id].as<std::string>());
        } else {
          recorded.health.push_back({row[id].as<std::string>(), row[failures].as<int>(), row[failing].as<long long>()});
        }
      }
      return recorded;
    });
  }

  Session::Impl& s_;
  const std::string delivery_events_;
};

}  // namespace

std::unique_ptr<DeliveriesStore> NewDeliveriesStore(Session& session, std::string delivery_events) {
  return std::make_unique<PgDeliveriesStore>(session, std::move(delivery_events));
}

}  // namespace pgcourier::store

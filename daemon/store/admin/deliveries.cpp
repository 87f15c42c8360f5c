#include "store/admin/deliveries.hpp"

#include "store/admin/impl.hpp"
#include "store/pg/arrays.hpp"

namespace pgcourier::store::admin {
namespace {

constexpr const char* kDelivery = R"(
SELECT d.id, d.tenant_id, d.status, d.attempts, d.subscription_id, d.url, d.event_id, d.event_type,
       date_trunc('second', d.next_attempt_at)::text AS next_attempt_at, d.lease_owner,
       date_trunc('second', d.lease_expires_at)::text AS lease_expires_at, d.last_status_code, d.last_error,
       date_trunc('second', d.created_at)::text AS created_at, date_trunc('second', d.updated_at)::text AS updated_at,
       date_trunc('second', d.completed_at)::text AS completed_at
FROM courier.delivery_status d WHERE d.id = $1)";

const pg::RowMapping<DeliveryDetail> kDeliveryColumns = {
    {"id", &DeliveryDetail::id},
    {"tenant_id", &DeliveryDetail::tenant_id},
    {"status", &DeliveryDetail::status},
    {"attempts", &DeliveryDetail::attempts},
    {"subscription_id", &DeliveryDetail::subscription_id},
    {"url", &DeliveryDetail::url},
    {"event_id", &DeliveryDetail::event_id},
    {"event_type", &DeliveryDetail::event_type},
    {"next_attempt_at", &DeliveryDetail::next_attempt_at},
    {"lease_owner", &DeliveryDetail::lease_owner},
    {"lease_expires_at", &DeliveryDetail::lease_expires_at},
    {"last_status_code", &DeliveryDetail::last_status_code},
    {"last_error", &DeliveryDetail::last_error},
    {"created_at", &DeliveryDetail::created_at},
    {"updated_at", &DeliveryDetail::updated_at},
    {"completed_at", &DeliveryDetail::completed_at},
};

constexpr const char* kTimeline = R"(
SELECT t.attempt, to_char(t.started_at, 'YYYY-MM-DD HH24:MI:SS.MSOF') AS started_at, t.duration_ms, t.status_code,
       t.outcome, t.error_class, t.retryable, t.error_summary, t.worker
FROM courier.delivery_timeline t WHERE t.delivery_id = $1 ORDER BY t.attempt)";

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
};

}  // namespace

std::string Deliveries::Publish(const std::string& tenant_id, const std::string& event_type,
                                const std::string& payload_json, const std::string& idempotency_key,
                                const std::string& trace_id, const std::string& labels_json) {
  return pg::Translate("publish", [&] {
    pqxx::work txn(connection_.impl().conn);
    const auto row = txn.exec_params1(
        "SELECT courier.publish($1, $2, $3::jsonb, nullif($4, ''), nullif($5, ''), labels => nullif($6, '')::jsonb) AS id",
        tenant_id, event_type, payload_json, idempotency_key, trace_id, labels_json);
    txn.commit();
    return Text(row["id"]);
  });
}

ReplayResult Deliveries::Replay(const ReplayFilter& filter) {
  return pg::Translate("replay deliveries", [&] {
    pqxx::work txn(connection_.impl().conn);
    ReplayResult out;
    // From the view courier_operator may read: a filter naming nothing that
    // exists is a mistake to report, not "0 deliveries".
    const auto found = txn.exec_params1(
        "SELECT ($1 = '' OR EXISTS (SELECT 1 FROM courier.subscription_health h WHERE h.subscription_id = $1)) AS sub, "
        "       ($2 = '' OR EXISTS (SELECT 1 FROM courier.subscription_health h WHERE h.tenant_id = $2)) AS tenant",
        filter.subscription_id, filter.tenant_id);
    out.subscription_found = found["sub"].as<bool>();
    out.tenant_found = found["tenant"].as<bool>();
    if (!out.subscription_found || !out.tenant_found) return out;
    NamedCall call("courier.replay_deliveries");
    call.ArgUnlessEmpty("tenant_id", filter.tenant_id)
        .ArgUnlessEmpty("subscription_id", filter.subscription_id)
        .ArgUnlessEmpty("event_type", filter.event_type)
        .ArgUnlessEmpty("since", filter.since, "timestamptz")
        .ArgUnlessEmpty("until", filter.until, "timestamptz")
        .Arg("include_delivered", filter.include_delivered ? "true" : "false", "boolean")
        .Arg("dry_run", filter.dry_run ? "true" : "false", "boolean");
    if (!filter.statuses.empty()) call.Arg("statuses", pg::TextArray(filter.statuses), "text[]");
    out.deliveries = call.Exec1(txn, "SELECT ")[0].as<int>();
    if (!filter.dry_run) txn.commit();  // a dry run changes nothing, whatever the function does
    return out;
  });
}

RedeliverResult Deliveries::Redeliver(const RedeliverRequest& request) {
  return pg::Translate("redeliver events", [&] {
    NamedCall call("courier.redeliver_events");
    call.Arg("subscription_id", request.subscription_id)
        .ArgUnlessEmpty("from_event", request.from_event)
        .ArgUnlessEmpty("since", request.since, "timestamptz");
    if (request.max_events) call.Arg("max_events", std::to_string(*request.max_events), "integer");
    pqxx::work txn(connection_.impl().conn);
    const auto row = call.Exec1(txn, "SELECT events_processed, next_cursor FROM ");
    txn.commit();
    return RedeliverResult{row["events_processed"].as<int>(), Text(row["next_cursor"])};
  });
}

std::optional<DeliveryDetail> Deliveries::Inspect(const std::string& id) {
  return pg::Translate("inspect delivery", [&]() -> std::optional<DeliveryDetail> {
    pqxx::read_transaction txn(connection_.impl().conn);
    const auto rows = txn.exec_params(kDelivery, id);
    if (rows.empty()) return std::nullopt;
    auto d = kDeliveryColumns.Read(rows[0]);
    d.timeline = kAttempt.ReadAll(txn.exec_params(kTimeline, id));
    return d;
  });
}

}  // namespace pgcourier::store::admin

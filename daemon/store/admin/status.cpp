#include "store/admin/status.hpp"

#include "store/admin/integrations_sql.hpp"
#include "store/admin/subscriptions_sql.hpp"

namespace pgcourier::store::admin {
namespace {

const pg::RowMapping<StatusRow> kStatusRow = {
    {"status", &StatusRow::status},
    {"deliveries", &StatusRow::deliveries},
    {"due_now", &StatusRow::due_now},
    {"oldest_due_at", &StatusRow::oldest_due_at},
};

const pg::RowMapping<RecentDelivery> kRecent = {
    {"id", &RecentDelivery::id},
    {"event_type", &RecentDelivery::event_type},
    {"subscription_id", &RecentDelivery::subscription_id},
    {"status", &RecentDelivery::status},
    {"attempts", &RecentDelivery::attempts},
    {"last_status_code", &RecentDelivery::last_status_code},
    {"last_error", &RecentDelivery::last_error},
    {"updated_at", &RecentDelivery::updated_at},
};

const std::string kAttentionStates =
    "SELECT " + kStateColumns +
    "FROM courier.subscription_health h "
    "WHERE h.state <> 'active' OR h.consecutive_failures > 0 ORDER BY h.tenant_id, h.subscription_id";

const pg::RowMapping<RunQueueMetrics> kRunQueue = {
    {"due", &RunQueueMetrics::due},
    {"scheduled", &RunQueueMetrics::scheduled},
    {"waiting", &RunQueueMetrics::waiting},
    {"running", &RunQueueMetrics::running},
    {"dead_lettered", &RunQueueMetrics::dead_lettered},
    {"unhealthy_connections", &RunQueueMetrics::unhealthy_connections},
    {"degraded_connections", &RunQueueMetrics::degraded_connections},
    {"credentials_expiring", &RunQueueMetrics::credentials_expiring},
    {"open_escalations", &RunQueueMetrics::open_escalations},
};

}  // namespace

std::vector<StatusRow> Status::Deliveries() {
  return pg::Translate("status", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kStatusRow.ReadAll(txn.exec(
        "SELECT q.status, q.deliveries, q.due_now, to_char(q.oldest_due_at, 'YYYY-MM-DD HH24:MI:SSOF') AS oldest_due_at "
        "FROM courier.queue_summary q ORDER BY q.status"));
  });
}

std::vector<RecentDelivery> Status::Recent(int limit) {
  return pg::Translate("recent deliveries", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kRecent.ReadAll(txn.exec_params(
        "SELECT d.id, d.event_type, d.subscription_id, d.status, d.attempts, d.last_status_code, d.last_error, "
        "  to_char(d.updated_at, 'YYYY-MM-DD HH24:MI:SS.MSOF') AS updated_at "
        "FROM courier.delivery_status d ORDER BY d.updated_at DESC LIMIT $1",
        limit));
  });
}

std::vector<SubscriptionState> Status::SubscriptionsNeedingAttention() {
  return pg::Translate("subscription health", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kState.ReadAll(txn.exec(kAttentionStates));
  });
}

std::vector<ConnectionInfo> Status::ConnectionsNeedingAttention() {
  return pg::Translate("connection health", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kConnectionHealth.ReadAll(txn.exec(
        "SELECT " + kConnectionHealthColumns +
        "FROM courier.connection_health h "
        "WHERE h.status IN ('pending', 'degraded') OR (h.status = 'active' AND h.health IN ('degraded', 'unhealthy')) "
        "ORDER BY h.tenant_id, h.id"));
  });
}

RunQueueMetrics Status::RunMetrics(std::chrono::seconds expiry_window) {
  return pg::Translate("run metrics", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kRunQueue.Read(txn.exec_params1(
        "SELECT m.due, m.scheduled, m.waiting, m.running, m.dead_lettered, m.unhealthy_connections, "
        "  m.degraded_connections, m.credentials_expiring, m.open_escalations "
        "FROM courier.run_queue_metrics($1::bigint * interval '1 second') m",
        static_cast<long long>(expiry_window.count())));
  });
}

}  // namespace pgcourier::store::admin

// admin::Status: what `pgcourierctl status` summarises, read from views the
// courier_operator role may read: deliveries by status (courier.queue_summary),
// the most recent deliveries, subscriptions and connections that need
// attention, and the runs' queue metrics. Borrows an admin::Connection; not
// thread-safe. Throws StoreError.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "store/admin/connections.hpp"
#include "store/admin/subscriptions.hpp"
#include "store/types.hpp"

namespace pgcourier::store::admin {

struct StatusRow {
  std::string status;
  long long deliveries = 0;
  long long due_now = 0;
  std::string oldest_due_at;  // empty: none due
};

struct RecentDelivery {
  std::string id, event_type, subscription_id, status, last_error, updated_at;
  int attempts = 0;
  std::optional<int> last_status_code;
};

class Status {
 public:
  explicit Status(Connection& connection) : connection_(connection) {}

  std::vector<StatusRow> Deliveries();
  std::vector<RecentDelivery> Recent(int limit);
  // Paused or disabled subscriptions, and those with consecutive failures.
  std::vector<SubscriptionState> SubscriptionsNeedingAttention();
  // Pending or degraded connections, and active ones whose probes fail; only
  // the fields of courier.connection_health.
  std::vector<ConnectionInfo> ConnectionsNeedingAttention();
  // courier.run_queue_metrics(): credentials_expiring within expiry_window.
  RunQueueMetrics RunMetrics(std::chrono::seconds expiry_window);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin

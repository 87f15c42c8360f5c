// admin::Deliveries: publishing, replay, re-delivery from a cursor and the
// inspection of one delivery, for the operator (courier.publish,
// courier.replay_deliveries, courier.redeliver_events, the views
// courier.delivery_status and courier.delivery_timeline). Borrows an
// admin::Connection; not thread-safe. Throws StoreError.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

// Filters of courier.replay_deliveries(); empty fields are not filtered on.
struct ReplayFilter {
  std::string tenant_id;
  std::string subscription_id;
  std::string event_type;
  std::string since;  // timestamptz input text, passed to PostgreSQL as is
  std::string until;
  std::vector<std::string> statuses;  // empty: the function's default (dead_lettered, failed)
  bool include_delivered = false;
  bool dry_run = false;  // count only
};

struct ReplayResult {
  int deliveries = 0;  // re-queued (dry run: that would be)
  // False when the filter names a subscription or a tenant that does not
  // exist (a mistyped id matches nothing; nothing was done).
  bool subscription_found = true;
  bool tenant_found = true;
};

// Arguments of courier.redeliver_events(): from_event or since (or both).
struct RedeliverRequest {
  std::string subscription_id;
  std::string from_event;  // cursor: the events after this one
  std::string since;       // timestamptz input text
  std::optional<int> max_events;  // nullopt: the function's default
};

struct RedeliverResult {
  int events_processed = 0;
  std::string next_cursor;  // the last event processed; empty when there was none
};

struct DeliveryDetail {
  std::string id;
  std::string tenant_id;
  std::string status;
  int attempts = 0;
  std::string subscription_id;
  std::string url;
  std::string event_id;
  std::string event_type;
  std::string next_attempt_at;  // "infinity" while held for a paused subscription
  std::string lease_owner;
  std::string lease_expires_at;
  std::optional<int> last_status_code;
  std::string last_error;
  std::string created_at;
  std::string updated_at;
  std::string completed_at;
  std::vector<AttemptInfo> timeline;  // by attempt number
};

class Deliveries {
 public:
  explicit Deliveries(Connection& connection) : connection_(connection) {}

  // courier.publish(): the event id (the first one's for a repeated idempotency key).
  std::string Publish(const std::string& tenant_id, const std::string& event_type, const std::string& payload_json,
                      const std::string& idempotency_key, const std::string& trace_id,
                      const std::string& labels_json = "");  // labels: a JSON object, "" for none
  // courier.replay_deliveries(); a dry run changes nothing.
  ReplayResult Replay(const ReplayFilter& filter);
  // courier.redeliver_events(); an unknown subscription or cursor event throws
  // StoreError with sqlstate P0002 and the function's message.
  RedeliverResult Redeliver(const RedeliverRequest& request);
  std::optional<DeliveryDetail> Inspect(const std::string& id);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin

// AdminStore: the operator's statements (pgcourierctl): subscriptions,
// publishing and status. One connection; not thread-safe. Throws StoreError.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/store.hpp"

namespace pgcourier::store {

struct NewSubscription {
  std::string id;  // empty: generated
  std::string tenant_id;
  std::string url;
  std::vector<std::string> event_types;
  std::string policy = "default";
  std::string description;
};

struct SecretInfo {
  std::string id;
  std::string last4;
  std::string created_at;
  std::string expires_at;  // empty: does not expire
};

struct SubscriptionInfo {
  std::string id;
  std::string tenant_id;
  std::string url;
  std::string event_types;  // as Postgres prints the array
  std::string policy;
  bool active = true;
  std::string created_at;
  std::vector<SecretInfo> secrets;  // active ones
  std::vector<std::pair<std::string, long long>> deliveries_by_status;
};

struct StatusRow {
  std::string status;
  long long deliveries = 0;
  long long due_now = 0;
  std::string oldest_due_at;
};

struct RecentDelivery {
  std::string id, event_type, subscription_id, status, last_error, updated_at;
  int attempts = 0;
  std::string last_status_code;
};

class AdminStore {
 public:
  explicit AdminStore(const std::string& database_url);
  ~AdminStore();
  AdminStore(const AdminStore&) = delete;
  AdminStore& operator=(const AdminStore&) = delete;

  // Inserts the subscription and its first signing secret (already sealed by
  // the caller, who knows the id it is bound to) in one transaction.
  // `seal` gets the subscription id and returns (sealed, last4).
  std::string CreateSubscription(const NewSubscription& sub,
                                 const std::function<std::pair<std::string, std::string>(const std::string&)>& seal);
  std::vector<SubscriptionInfo> ListSubscriptions(const std::string& tenant_id);
  std::optional<SubscriptionInfo> ShowSubscription(const std::string& id);
  std::string Publish(const std::string& tenant_id, const std::string& event_type, const std::string& payload_json,
                      const std::string& idempotency_key, const std::string& trace_id);
  std::vector<StatusRow> Status();
  std::vector<RecentDelivery> Recent(int limit);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::store

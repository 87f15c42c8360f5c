// AdminStore: the operator's statements (pgcourierctl): subscriptions and
// their signing secrets, publishing, replay, inspection and status. One
// connection; not thread-safe. Throws StoreError.
//
// Timestamps are display text in ISO style to the second
// ("2026-11-22 05:00:00+00"); empty means NULL (never, or not set).
#pragma once

#include <chrono>
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

// A subscription's state and health (courier.subscription_health).
struct SubscriptionState {
  std::string subscription_id;
  std::string tenant_id;
  std::string url;
  std::string state;   // active, paused or disabled
  std::string since;   // when it was paused or disabled; empty when active
  std::string reason;  // why it was paused or disabled
  int consecutive_failures = 0;
  std::string failing_since;  // the first failure after the last success
  std::string last_success_at;
  std::string last_failure_at;
  std::string last_error;
  long long held_deliveries = 0;  // waiting until the subscription is resumed
};

struct SubscriptionInfo {
  std::string id;
  std::string tenant_id;
  std::string url;
  std::string event_types;  // as Postgres prints the array
  std::string policy;
  std::string created_at;
  SubscriptionState state;
  std::vector<SecretInfo> secrets;  // active ones (unrevoked, unexpired), newest first
  std::vector<std::pair<std::string, long long>> deliveries_by_status;
};

struct SecretRotation {
  SecretInfo created;
  std::vector<SecretInfo> expiring;  // other active secrets, now expiring after the grace period
  std::vector<SecretInfo> kept;      // other active secrets that already expire before then
};

struct SecretRevocation {
  enum class Result {
    kRevoked,           // `revoked` lists what was revoked (possibly nothing)
    kNoSubscription,
    kUnknownSecret,     // the subscription has no secret with that id
    kNotActive,         // that secret is already revoked or expired
    kLastActiveSecret,  // refused: the subscription would have no secret left to sign with
  };
  Result result = Result::kRevoked;
  std::vector<SecretInfo> revoked;
  std::vector<SecretInfo> active;  // the active secrets afterwards, newest first
};

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

// One attempt of courier.delivery_timeline.
struct AttemptInfo {
  int attempt = 0;
  std::string started_at;  // to the millisecond
  double duration_ms = 0;
  std::string status_code;  // empty: no HTTP response
  std::string outcome;
  std::string error_class;
  bool retryable = false;
  std::string error_summary;
  std::string worker;
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
  std::string last_status_code;
  std::string last_error;
  std::string created_at;
  std::string updated_at;
  std::string completed_at;
  std::vector<AttemptInfo> timeline;  // by attempt number
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

  // Subscription controls: each calls the SQL function of the same name and
  // returns nullopt when there is no such subscription. An empty reason
  // leaves the function's default. Pause and disable return the state
  // afterwards; resume returns how many held deliveries it released.
  std::optional<SubscriptionState> PauseSubscription(const std::string& id, const std::string& reason);
  std::optional<int> ResumeSubscription(const std::string& id);
  std::optional<SubscriptionState> DisableSubscription(const std::string& id, const std::string& reason);
  // Paused or disabled subscriptions, and those with consecutive failures.
  std::vector<SubscriptionState> SubscriptionsNeedingAttention();

  // In one transaction: adds a signing secret (sealed by the caller with the
  // subscription id as associated data) and makes the subscription's other
  // active secrets expire after `grace`, unless they already expire earlier.
  std::optional<SecretRotation> RotateSecret(const std::string& subscription_id, const std::string& sealed_secret,
                                             const std::string& last4, std::chrono::seconds grace);
  // Revokes `secret_id`, or with an empty one every active secret but the newest.
  SecretRevocation RevokeSecrets(const std::string& subscription_id, const std::string& secret_id);

  // courier.replay_deliveries(): how many deliveries were (dry run: would be) re-queued.
  int ReplayDeliveries(const ReplayFilter& filter);
  RedeliverResult RedeliverEvents(const RedeliverRequest& request);
  std::optional<DeliveryDetail> InspectDelivery(const std::string& id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::store

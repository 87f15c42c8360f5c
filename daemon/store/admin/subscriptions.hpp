// admin::Subscriptions: subscriptions and their signing secrets, for the
// operator. Writes call the management functions of
// sql/schema/50_management.sql (create, update, rotate and revoke secrets)
// and of 20_subscriptions.sql (pause, resume, disable), so pgcourierctl meets
// the same rules as any SQL caller; signing secrets arrive here already sealed
// with the master key (the database never sees one in plain text). Borrows an
// admin::Connection; not thread-safe. Throws StoreError: refusals of the
// functions keep their SQLSTATE (22023 a bad value, P0002 unknown id, 55000
// a refused revocation).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

struct NewSubscription {
  std::string id;  // required: the sealed secret is bound to it (NewId() when the operator gave none)
  std::string tenant_id;
  std::string url;
  std::vector<std::string> event_types;
  std::string policy = "default";
  std::string description;
  std::string sealed_secret;  // its first signing secret, sealed for `id`
  std::string secret_last4;
  std::string filter;      // a jsonpath predicate over the payload; empty: none
  std::string scope_json;  // a JSON object of labels every event must carry; empty: none
  // Set for a v1a subscription: sealed_secret is then the whsk_ private key
  // and this its whpk_ public key (courier.rotate_subscription_key()).
  std::string public_key;
};

struct SecretInfo {
  std::string id;
  std::string last4;
  std::string created_at;
  std::string expires_at;  // empty: does not expire
  std::string public_key;  // a v1a (ed25519) key's whpk_ public key; empty for a v1 (HMAC) secret
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
  std::vector<std::string> event_types;
  std::string policy;
  std::string description;         // empty: none
  std::string ordering;            // none or fifo
  std::string ordering_key_field;  // empty: the event's ordering_key only
  std::optional<int> max_in_flight;             // nullopt: the policy's limit
  std::optional<double> rate_limit_per_second;  // nullopt: the policy's limit
  std::optional<int> rate_limit_burst;          // nullopt: the policy's limit
  std::string filter;      // empty: none
  std::string scope_json;  // empty: none
  std::string created_at;
  std::string updated_at;
  SubscriptionState state;
  std::vector<SecretInfo> secrets;  // active ones (unrevoked, unexpired), newest first
  std::vector<std::pair<std::string, long long>> deliveries_by_status;  // Show() only
};

struct SecretRotation {
  SecretInfo created;
  std::vector<SecretInfo> expiring;  // other active secrets, now expiring after the grace period
  std::vector<SecretInfo> kept;      // other active secrets that already expire before then
};

struct SecretRevocation {
  std::vector<SecretInfo> revoked;  // possibly none
  std::vector<SecretInfo> active;   // the active secrets afterwards, newest first
};

class Subscriptions {
 public:
  explicit Subscriptions(Connection& connection) : connection_(connection) {}

  // A new subscription id (courier.new_id('sub_')), to seal its first secret for.
  std::string NewId();
  // courier.create_subscription(): the subscription and its first secret; its
  // id. A filter or scope is set by courier.update_subscription() in the same
  // transaction (nothing is written when either is refused).
  std::string Create(const NewSubscription& subscription);
  // courier.update_subscription(): `changes_json` is a JSON object of the
  // fields to change (null clears). nullopt: no such subscription.
  std::optional<SubscriptionInfo> Update(const std::string& id, const std::string& changes_json);

  std::vector<SubscriptionInfo> List(const std::string& tenant_id);  // empty tenant: all
  std::optional<SubscriptionInfo> Show(const std::string& id);
  // True when `tenant_id` has at least one subscription.
  bool TenantHasSubscriptions(const std::string& tenant_id);

  // Each calls the SQL function of the same name and returns nullopt when
  // there is no such subscription. An empty reason leaves the function's
  // default. Pause and disable return the state afterwards; resume returns
  // how many held deliveries it released.
  std::optional<SubscriptionState> Pause(const std::string& id, const std::string& reason);
  std::optional<int> Resume(const std::string& id);
  std::optional<SubscriptionState> Disable(const std::string& id, const std::string& reason);

  // courier.rotate_subscription_secret(): adds a secret (sealed with the
  // subscription id as associated data); the other active ones expire after
  // `grace` unless they already expire earlier. nullopt: no such subscription.
  std::optional<SecretRotation> RotateSecret(const std::string& subscription_id, const std::string& sealed_secret,
                                             const std::string& last4, std::chrono::seconds grace,
                                             const std::string& public_key = "");  // set: a v1a key
  // courier.revoke_subscription_secrets(): `secret_id`, or with an empty one
  // every active secret but the newest. Refusals throw StoreError (P0002 for
  // an unknown subscription or secret, 55000 for one not active or the last).
  SecretRevocation RevokeSecrets(const std::string& subscription_id, const std::string& secret_id);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin

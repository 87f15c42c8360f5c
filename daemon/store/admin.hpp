// AdminStore: the operator's statements (pgcourierctl): subscriptions and
// their signing secrets, publishing, replay, inspection and status; and for
// integration runs (sql/schema/40_integrations.sql): connections, sealed credentials and runs. One
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

#include "store/errors.hpp"
#include "store/types.hpp"

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

// One attempt of courier.delivery_timeline or courier.run_timeline.
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
  std::string error_code;          // runs only
  std::string credential_version;  // runs only; empty: no credential
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

// ---- integration runs (sql/schema/40_integrations.sql) ----

// What an integration command found instead of doing its work; the caller words it.
enum class Refusal {
  kNone,
  kNotFound,     // no such credential
  kOtherTenant,  // detail: the tenant the credential belongs to
  kRevoked,      // the credential is revoked
  kRotating,     // detail: the number of the version already rotating
  kSameSecret,   // detail: the number of the active version, whose secret it is
  kExpiryPast,   // expires_at is not in the future
};

template <typename T>
struct Checked {
  Refusal refusal = Refusal::kNone;
  std::string detail;
  T value{};  // set when refusal is kNone
};

// A row of courier.connections; empty strings are NULL.
struct NewConnection {
  std::string id;  // empty: generated
  std::string tenant_id;
  std::string provider;
  std::string base_url;
  std::string auth_mode = "none";
  std::string credential_id;
  std::string api_key_header;
  std::string token_url;
  std::string client_id;
  std::string scopes;
  std::string health_check_method = "GET";
  std::string health_check_path;       // empty: never probed
  std::optional<int> expected_status;  // nullopt: any 2xx
  std::string policy = "default";
  std::string status = "active";
  std::optional<double> rate_limit_per_second;
  std::optional<int> rate_limit_burst;
  std::optional<int> max_in_flight;
};

// A connection with its health (courier.connection_health). Numbers that may
// be NULL are display text, empty for NULL.
struct ConnectionInfo {
  std::string id;
  std::string tenant_id;
  std::string provider;
  std::string base_url;
  std::string auth_mode;
  std::string status;
  std::string status_reason;
  std::string health;
  int consecutive_probe_failures = 0;
  std::string last_checked_at;
  std::string last_health_error;
  std::string credential_id;
  std::string credential_version;  // the active one
  std::string credential_expires_at;
  long long runs_waiting = 0;  // pending runs
  long long open_failures = 0;
  std::string api_key_header;
  std::string token_url;
  std::string client_id;
  std::string scopes;
  std::string health_check;  // "GET /health"; empty: never probed
  std::string expected_status;
  std::string policy;
  std::string max_in_flight;
  std::string rate_limit_per_second;
  std::string rate_limit_burst;
  std::string created_at;
  std::string updated_at;
};

// A connection's status before an operator changed it, and its pending runs.
struct ConnectionChange {
  std::string previous_status;
  long long pending_runs = 0;
};

struct NewCredential {
  std::string id;  // empty: generated
  std::string tenant_id;
  std::string name;
  std::string expires_at;  // timestamptz input text; empty: does not expire
};

// A credential with its active version (courier.credential_expiry for the expiry).
struct CredentialInfo {
  std::string id;
  std::string tenant_id;
  std::string name;
  std::string status;  // active, rotating or revoked
  std::string active_version;
  std::string fingerprint;
  std::string expires_at;  // of the active version; empty: does not expire
  std::string expires_in;  // "6 days 23:59:00", or "expired"
  std::string created_at;
  std::string updated_at;
};

// A credential version's metadata: never the sealed secret.
struct CredentialVersionInfo {
  int version = 0;
  std::string status;
  std::string fingerprint;
  std::string created_at;
  std::string activated_at;
  std::string retired_at;
  std::string expires_at;
  std::string verification_error;
};

struct CredentialDetail {
  CredentialInfo credential;
  std::vector<CredentialVersionInfo> versions;  // newest first
  std::vector<ConnectionInfo> connections;      // those using it
};

// Arguments of courier.enqueue_run(); empty ones take the function's defaults.
struct NewRun {
  std::string tenant_id;
  std::string connection_id;
  std::string operation;
  std::string method;
  std::string path;
  std::string body;
  std::string headers_json;
  std::string idempotency_key;
  std::string trace_id;
  std::string external_ref_pointer;
};

struct EnqueuedRun {
  std::string id;
  bool created = false;                      // false: the idempotency key named an earlier run
  std::optional<ConnectionInfo> connection;  // nullopt: no such connection (the run is poison)
};

// A run of courier.run_status, with its idempotency key and external_ref pointer.
struct RunInfo {
  std::string id;
  std::string tenant_id;
  std::string connection_id;
  std::string provider;  // empty: no such connection
  std::string operation;
  std::string method;
  std::string path;
  std::string status;
  int attempts = 0;
  std::string next_attempt_at;
  std::string lease_owner;
  std::string lease_expires_at;
  std::string external_ref;
  std::string last_status_code;
  std::string last_error;
  std::string last_error_code;
  std::string trace_id;
  std::string created_at;
  std::string started_at;
  std::string completed_at;
  std::string latency_ms;
  std::string waiting_for;  // "connection degraded/unknown" while its connection holds it
  std::string idempotency_key;
  std::string external_ref_pointer;
};

// A row of courier.failures.
struct FailureInfo {
  std::string id;
  std::string created_at;
  std::string category;
  std::string error_code;
  std::string message;
  std::string attempt;
  std::string next_action;
  std::string resolved_at;  // empty: open
  std::string resolution;
  long long escalations = 0;
};

struct RunDetail {
  RunInfo run;
  std::vector<AttemptInfo> timeline;  // by attempt number
  std::vector<FailureInfo> failures;  // oldest first
};

struct RunFilter {
  std::string tenant_id;  // empty: every tenant
  std::string status;     // empty: every status
  int limit = 50;         // the most recent ones
};

// A run that courier.replay_run() was asked to replay.
struct RunReplay {
  std::string previous_status;
  bool replayed = false;  // false: it was pending or running, nothing to replay
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

  // Integration runs. Connection create checks that the credential exists, is
  // not revoked and belongs to the connection's tenant.
  Checked<std::string> CreateConnection(const NewConnection& connection);
  std::vector<ConnectionInfo> ListConnections(const std::string& tenant_id);
  std::optional<ConnectionInfo> ShowConnection(const std::string& id);
  // Retire: from any status. Activate: from pending or degraded, clearing the
  // reason; a retired connection stays retired. nullopt: no such connection.
  std::optional<ConnectionChange> RetireConnection(const std::string& id);
  std::optional<ConnectionChange> ActivateConnection(const std::string& id);
  // Pending or degraded connections, and active ones whose probes fail; only
  // the fields of courier.connection_health (status works as courier_operator).
  std::vector<ConnectionInfo> ConnectionsNeedingAttention();

  // In one transaction: the credential and its version 1, active. `seal`
  // gets the credential id and returns (sealed secret, fingerprint).
  Checked<std::string> CreateCredential(
      const NewCredential& credential,
      const std::function<std::pair<std::string, std::string>(const std::string&)>& seal);
  // In one transaction: the next version, rotating, and the credential rotating.
  // Returns the new version number.
  Checked<int> RotateCredential(const std::string& credential_id, const std::string& sealed_secret,
                                const std::string& fingerprint, const std::string& expires_at);
  std::vector<CredentialInfo> ListCredentials(const std::string& tenant_id);
  std::optional<CredentialDetail> ShowCredential(const std::string& id);

  EnqueuedRun EnqueueRun(const NewRun& run);
  std::vector<RunInfo> ListRuns(const RunFilter& filter);
  std::optional<RunDetail> ShowRun(const std::string& id);
  // courier.replay_run(); its refusals (no such run, completed) throw StoreError
  // with the database's message.
  RunReplay ReplayRun(const std::string& id);
  // courier.run_queue_metrics(): credentials_expiring within expiry_window.
  RunQueueMetrics RunMetrics(std::chrono::seconds expiry_window);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::store

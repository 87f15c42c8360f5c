// Store: the daemon's only way to the database. One libpq connection, used by
// one thread (the dispatcher); not thread-safe. Every statement is prepared
// under a stable name (kStmt* below) used in logs and metrics.
//
// Errors: every method throws StoreError. kind() says whether the connection
// was lost (reconnect and retry later) or the statement failed for another
// reason. No pqxx type leaks out of this header.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/delivery.hpp"
#include "model/run.hpp"

namespace pgcourier::store {

class StoreError : public std::runtime_error {
 public:
  // kConflict: deadlock or serialization failure; the transaction can be retried.
  enum class Kind { kConnectionLost, kSchema, kStatement, kConflict };
  StoreError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct SchemaStatus {
  int current_version = 0;                  // highest applied migration, 0 if none
  int required_version = 0;                 // highest migration this build knows
  std::vector<std::string> missing;         // "NNN_name" of each migration not applied
};

// A lease that expired while its owner held it (its daemon died or stalled).
struct ExpiredLease {
  std::string delivery_id;
  std::string lease_owner;
  std::string policy_name;
  int previous_attempts = 0;
  int attempt_budget_base = 0;
  std::string subscription_id;
};

struct QueueMetrics {
  long long due = 0, scheduled = 0, held = 0, delivering = 0, dead_lettered = 0, paused_subscriptions = 0;
  double oldest_due_seconds = 0;
};

// A subscription's failure counters after a batch of outcomes changed them.
struct SubscriptionHealth {
  std::string subscription_id;
  int consecutive_failures = 0;
  std::int64_t failing_for_ms = 0;  // since the first failure after the last success; 0 when healthy
};

// A claimed delivery given back without recording an attempt (shutdown, or
// held because its policy is unknown).
struct Release {
  std::string delivery_id;
  std::int64_t delay_ms = 0;  // negative: held until the subscription is resumed
  std::string reason;
};

// A run lease that expired while its owner held it.
struct ExpiredRunLease {
  std::string run_id;
  std::string lease_owner;
  std::string policy_name;
  int previous_attempts = 0;
  int attempt_budget_base = 0;
  int rate_limited_attempts = 0;
};

struct RunQueueMetrics {
  long long due = 0, scheduled = 0, waiting = 0, running = 0, dead_lettered = 0;
  long long unhealthy_connections = 0, degraded_connections = 0, credentials_expiring = 0, open_escalations = 0;
};

// What ClaimDue claims: up to `limit` rows leased for `lease`, of `tenants` (empty: all).
struct ClaimRequest {
  int limit = 0;
  std::chrono::milliseconds lease{0};
  std::vector<std::string> tenants;
};

// Timing of one database statement, reported to an observer (metrics).
using StatementObserver = std::function<void(const char* statement, double seconds)>;

class Store {
 public:
  // Connects (empty url = libpq environment). Throws StoreError.
  explicit Store(const std::string& database_url, StatementObserver observer = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  SchemaStatus CheckSchema();
  // The delivery_events setting (all, failures, none) used by RecordOutcomes.
  void SetDeliveryEvents(const std::string& mode);

  // LISTEN for new deliveries. After this, socket() becomes readable when a
  // notification arrives; call TakeNotifications() to consume them.
  void Listen();
  int socket() const;
  // Non-blocking: reads what arrived; returns how many delivery notifications
  // arrived since the last call.
  int TakeNotifications();
  // Run notifications (courier_runs) read by TakeNotifications since the last call.
  int TakeRunNotifications();
  // NOTIFY courier_outbox. The outcome statement defers its outbox NOTIFY
  // (courier.notify_when_inserted, sql/schema/10_core.sql): the dispatcher calls
  // this after its commits, coalesced.
  void NotifyOutbox();

  // Claims up to `limit` due deliveries for `worker`, leasing them for `lease`,
  // only of `tenants` when not empty.
  std::vector<model::ClaimedDelivery> ClaimDue(const std::string& worker, int limit,
                                              std::chrono::milliseconds lease,
                                              const std::vector<std::string>& tenants = {});

  // Maintenance leadership: true while this connection holds the lock.
  bool TryBecomeLeader();
  QueueMetrics ReadQueueMetrics();
  // Removes up to batch finished deliveries past retention; returns how many.
  int Prune(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
            int batch);

  // Records attempts and next states in one transaction. An outcome applies
  // only while `worker` still holds the delivery's lease at that attempt
  // number; the ids that did apply are returned (the rest had lost their
  // lease and were taken over). If the batch violates a constraint, rows are
  // retried one by one and a row that still fails is quarantined: marked
  // failed with the database's error, so the rest of the batch commits.
  // The subscriptions whose failure counters changed are appended to `health`.
  std::vector<std::string> RecordOutcomes(const std::string& worker,
                                          const std::vector<model::DeliveryOutcome>& outcomes,
                                          std::vector<SubscriptionHealth>* health = nullptr);

  // Finds up to `limit` expired leases, asks `decide` what each becomes
  // (outcome "lease_expired"), and records that as an attempt by `worker`,
  // in one transaction. Returns how many were recovered.
  int RescueExpired(const std::string& worker, int limit,
                    const std::function<model::DeliveryOutcome(const ExpiredLease&)>& decide);

  // Makes deliveries held unattempted (last_error "held: ...") due now.
  // Returns how many.
  int WakeHeld();

  // Pause (hold its waiting deliveries) or disable a subscription, with the reason stored.
  void PauseSubscription(const std::string& subscription_id, const std::string& reason);
  void DisableSubscription(const std::string& subscription_id, const std::string& reason);

  // Gives claimed deliveries back (status pending/retry_scheduled, lease cleared).
  int ReleaseLeases(const std::string& worker, const std::vector<Release>& releases);

  // Integration runs (run_store.cpp) ------------------------------------------

  // Claims up to `limit` due runs that can execute now, plus runs that never
  // can (unknown, retired or foreign connection: the caller dead-letters them).
  // Runs of policies in `degraded_ok_policies` also run on a degraded connection.
  std::vector<model::ClaimedRun> ClaimDueRuns(const std::string& worker, int limit, std::chrono::milliseconds lease,
                                              const std::vector<std::string>& tenants,
                                              const std::vector<std::string>& degraded_ok_policies);
  // Records attempts (and failures, escalations, outbox events: see
  // courier.record_run_outcomes) in one transaction, each only while its
  // expected owner still holds the lease. A batch that breaks a constraint is
  // retried row by row; a row that still fails is dead-lettered as poison
  // with the database's error. Returns the ids that applied.
  std::vector<std::string> RecordRunOutcomes(const std::string& worker, const std::vector<model::RunOutcome>& outcomes);
  // Marks an active connection degraded unless `credential_version` (> 0) is no
  // longer its active version. False if nothing changed.
  bool DegradeConnection(const std::string& connection_id, const std::string& reason, int credential_version);
  // Gives claimed runs back without an attempt (limits, waiting for a token, shutdown).
  int ReleaseRuns(const std::string& worker, const std::vector<Release>& releases);
  int RescueExpiredRuns(const std::string& worker, int limit,
                        const std::function<model::RunOutcome(const ExpiredRunLease&)>& decide);
  std::vector<model::ProbeTarget> ConnectionsToProbe();
  // Returns the connection's health after the probe ("" if it no longer exists).
  std::string RecordProbe(const std::string& connection_id, bool ok, std::optional<int> status_code,
                          const std::string& error, int unhealthy_after);
  std::vector<model::PendingRotation> PendingRotations();
  // False when the version was no longer rotating (another daemon finished it).
  bool FinishRotation(const std::string& version_id, bool ok, const std::string& connection_id,
                      const std::string& error);
  RunQueueMetrics ReadRunQueueMetrics(std::chrono::milliseconds expiry_window);
  int PruneRuns(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
                int batch);

 private:
  std::vector<std::string> RecordOneRunOutcome(const std::string& worker, const model::RunOutcome& outcome);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Applies every embedded migration not yet recorded, each in its own
// transaction, under an advisory lock (safe to run concurrently and twice).
// Returns "NNN_name" of each migration applied. Throws StoreError.
std::vector<std::string> Migrate(const std::string& database_url);

// Postgres array literal for a text[] parameter ({"a","b",NULL}).
std::string ToTextArrayLiteral(const std::vector<const std::string*>& items);

}  // namespace pgcourier::store

// Value types that cross the store's boundary (besides model/): what the
// daemon reads from and hands to its statements. Plain data; not synchronised.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pgcourier::store {

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

// A claimed delivery or run given back without recording an attempt (over a
// limit, held because it cannot be attempted now, or at shutdown).
struct Release {
  std::string id;
  std::int64_t delay_ms = 0;  // negative: held until the subscription is resumed
  std::string reason;
};

// One batch of the pass that moves schedules back after a backward step of
// the database clock (queries/shift_schedules.sql says what moves and why).
struct ScheduleShift {
  std::chrono::milliseconds step{0};          // how far the clock stepped back
  std::chrono::milliseconds lease_margin{0};  // leases further away than this are of the old clock
  std::string after;                          // the last id of the previous batch ("": from the start)
  int batch = 0;                              // rows to visit
};

struct ShiftedSchedules {
  std::string last_id;  // where the next batch starts
  int visited = 0;      // fewer than the batch: the pass is over
  int due_times = 0;
  int leases = 0;
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

// What a claim takes: up to `limit` due rows leased to `worker` for `lease`,
// only of `tenants` (empty: all).
struct ClaimRequest {
  std::string worker;
  int limit = 0;
  std::chrono::milliseconds lease{0};
  std::vector<std::string> tenants;
};

// A delivery claim: ClaimRequest plus the fair-share bounds of the daemon
// (claim_due.sql says how each is applied).
struct DeliveryClaimRequest {
  ClaimRequest claim;
  std::int64_t max_bytes = 0;                    // payload bytes of the whole batch...
  std::int64_t max_first_bytes = 0;              // ...but its first row may be larger, up to this
  std::vector<std::string> window_subscriptions;  // at most window_slots[i] rows of window_subscriptions[i]
  std::vector<int> window_slots;
  int default_slots = 0;                          // of any other subscription
  std::vector<std::string> excluded_subscriptions;  // at their cap: not looked at
  std::vector<std::string> excluded_tenants;
  // First attempts: the subscriptions are visited in id order from just after
  // this one (where the previous claim stopped), round to it again.
  std::string resume_after;
  // First attempts: not due before floor_due_us[i] (unix microseconds) in
  // subscription floor_subscriptions[i], nor before other_floor_us in the
  // others (none: anywhere). lanes/deliveries/scan_floors.hpp says why.
  std::vector<std::string> floor_subscriptions;
  std::vector<std::int64_t> floor_due_us;
  std::optional<std::int64_t> other_floor_us;
};


// What a batch of delivery outcomes did: the ids that applied (the others had
// lost their lease), and the subscriptions whose failure counters changed.
struct RecordedOutcomes {
  std::vector<std::string> applied;
  std::vector<SubscriptionHealth> health;
};

// Timing of one database statement, reported to an observer (metrics).
using StatementObserver = std::function<void(const char* statement, double seconds)>;

}  // namespace pgcourier::store

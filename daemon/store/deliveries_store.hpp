// DeliveriesStore: every statement the delivery lane runs, behind an
// interface so that the lane's decisions are tested with a fake
// (tests/unit) and its SQL against a real PostgreSQL (tests/pg).
// NewDeliveriesStore() gives the implementation over a Session; the engine
// makes one per session (the main one claims and reads, the writer's records).
//
// Threading: like its Session, one thread at a time. Errors: StoreError.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "model/delivery.hpp"
#include "store/errors.hpp"
#include "store/types.hpp"

namespace pgcourier::store {

class Session;

// What a claim leased, and how many due rows it looked at: more than it
// leased means more is due for subscriptions whose windows are now full, and
// the next claim (which leaves them out) can go on at once.
struct ClaimedDeliveries {
  std::vector<model::ClaimedDelivery> rows;
  int candidates = 0;
  // (subscription, due time in unix microseconds) of each first attempt
  // among the rows: where the next claim may start (lanes/deliveries/scan_floors.hpp).
  std::vector<std::pair<std::string, std::int64_t>> first_attempts;
};

class DeliveriesStore {
 public:
  virtual ~DeliveriesStore() = default;

  // Leases due deliveries (claim_due), fairly and within the request's bounds.
  virtual ClaimedDeliveries Claim(const DeliveryClaimRequest& request) = 0;
  // The heartbeat: `worker`'s leases of `ids` last `lease` more (renew_leases);
  // returns how many were still its own.
  virtual int RenewLeases(const std::string& worker, const std::vector<std::string>& ids,
                          std::chrono::milliseconds lease) = 0;
  // Records attempts and next states in one transaction (record_outcomes). An
  // outcome applies only while its expected owner (empty: `worker`) still
  // holds the lease at that attempt number (and, for a rescue, while that
  // lease is expired). If the batch breaks a constraint, rows are retried one
  // by one and a row that still fails is quarantined (quarantine_outcome):
  // failed with the database's error, so the rest of the batch commits.
  virtual RecordedOutcomes Record(const std::string& worker, const std::vector<model::DeliveryOutcome>& outcomes) = 0;
  // Gives claimed deliveries back without an attempt (release_leases).
  virtual int Release(const std::string& worker, const std::vector<Release>& releases) = 0;
  // Expired leases, oldest first (find_expired_leases); read only.
  virtual std::vector<ExpiredLease> FindExpired(int limit) = 0;
  // Held deliveries due now (wake_held); returns how many.
  virtual int WakeHeld() = 0;
  virtual void PauseSubscription(const std::string& subscription_id, const std::string& reason) = 0;
  virtual void DisableSubscription(const std::string& subscription_id, const std::string& reason) = 0;
  virtual QueueMetrics ReadQueueMetrics() = 0;
  // KPI snapshots and thresholds of the complete minutes since the last call (70_providers.sql);
  // returns the minutes summarised.
  virtual int MaintainKpis(int max_minutes) = 0;
  // One batch of the pass that moves due times and leases of the old clock
  // back after a backward step of the database clock (shift_schedules).
  virtual ShiftedSchedules ShiftSchedules(const ScheduleShift& shift) = 0;
  // Removes up to `batch` finished deliveries past retention; returns how many.
  virtual int Prune(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
                    int batch) = 0;
};

// `delivery_events` (all, failures, none) decides which finished deliveries
// write outbox events and failures rows in Record().
std::unique_ptr<DeliveriesStore> NewDeliveriesStore(Session& session, std::string delivery_events);

}  // namespace pgcourier::store

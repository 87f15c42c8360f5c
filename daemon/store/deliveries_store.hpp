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

class DeliveriesStore {
 public:
  virtual ~DeliveriesStore() = default;

  // Leases due deliveries (claim_due).
  virtual std::vector<model::ClaimedDelivery> Claim(const ClaimRequest& request) = 0;
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
  // Removes up to `batch` finished deliveries past retention; returns how many.
  virtual int Prune(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
                    int batch) = 0;
};

// `delivery_events` (all, failures, none) decides which finished deliveries
// write outbox events and failures rows in Record().
std::unique_ptr<DeliveriesStore> NewDeliveriesStore(Session& session, std::string delivery_events);

}  // namespace pgcourier::store

// RunsStore: every statement the run lane runs (claims, outcomes, releases,
// connection health, credential rotations, run metrics and retention),
// behind an interface like DeliveriesStore. The state rules, failures,
// escalations and outbox events of runs live in the schema's functions
// (sql/schema/); these statements call them.
//
// Threading: like its Session, one thread at a time. Errors: StoreError.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/run.hpp"
#include "store/errors.hpp"
#include "store/types.hpp"

namespace pgcourier::store {

class Session;

struct RunClaimRequest {
  ClaimRequest claim;
  // Policies whose runs also execute while their connection's health is degraded.
  std::vector<std::string> degraded_ok_policies;
};

class RunsStore {
 public:
  virtual ~RunsStore() = default;

  // Due runs that can execute now, plus runs that never can (unknown,
  // retired or foreign connection: the lane dead-letters them as poison).
  virtual std::vector<model::ClaimedRun> Claim(const RunClaimRequest& request) = 0;
  // Records attempts (and failures, escalations, outbox events) in one
  // transaction, each only while its expected owner still holds the lease.
  // A batch that breaks a constraint is retried row by row; a row that still
  // fails is written without its response, then dead-lettered as poison with
  // the database's error. Returns the ids that applied.
  virtual std::vector<std::string> Record(const std::string& worker, const std::vector<model::RunOutcome>& outcomes) = 0;
  virtual int Release(const std::string& worker, const std::vector<Release>& releases) = 0;
  // The heartbeat of `worker`'s runs in flight (renew_run_leases).
  virtual int RenewLeases(const std::string& worker, const std::vector<std::string>& ids,
                          std::chrono::milliseconds lease) = 0;
  virtual std::vector<ExpiredRunLease> FindExpired(int limit) = 0;
  // False when nothing changed (not active, or `credential_version` > 0 is no longer its active version).
  virtual bool DegradeConnection(const std::string& connection_id, const std::string& reason,
                                 int credential_version) = 0;
  virtual std::vector<model::ProbeTarget> ConnectionsToProbe() = 0;
  // The connection's health after the probe ("" when it no longer exists).
  virtual std::string RecordProbe(const std::string& connection_id, bool ok, std::optional<int> status_code,
                                  const std::string& error, int unhealthy_after) = 0;
  virtual std::vector<model::PendingRotation> PendingRotations() = 0;
  // False when the version was no longer rotating (another daemon finished it).
  virtual bool FinishRotation(const std::string& version_id, bool ok, const std::string& connection_id,
                              const std::string& error) = 0;
  // Rotation policies (70_providers.sql): raises the due rotations without a
  // command, and marks those with one as `worker`'s and returns them.
  virtual std::vector<model::DueRotation> StartDueRotations(const std::string& worker, int limit) = 0;
  // The command's sealed output as the rotating version; nullopt when refused.
  virtual std::optional<int> StoreRotationResult(const std::string& credential_id, const std::string& worker,
                                                 const std::string& sealed_secret, const std::string& fingerprint) = 0;
  virtual bool FailRotation(const std::string& credential_id, const std::string& worker, const std::string& reason) = 0;
  virtual RunQueueMetrics ReadQueueMetrics(std::chrono::milliseconds expiry_window) = 0;
  // DeliveriesStore::ShiftSchedules for the runs (shift_run_schedules).
  virtual ShiftedSchedules ShiftSchedules(const ScheduleShift& shift) = 0;
  virtual int Prune(std::chrono::milliseconds completed_retention, std::chrono::milliseconds dead_letter_retention,
                    int batch) = 0;
};

std::unique_ptr<RunsStore> NewRunsStore(Session& session);

}  // namespace pgcourier::store

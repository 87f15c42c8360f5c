// Metrics: a narrow facade over prometheus-cpp. Names follow Prometheus
// conventions (pgcourier_ prefix, base units, _total counters); labels are
// bounded (never a delivery id, URL or tenant). All methods are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace pgcourier::metrics {

class Metrics {
 public:
  // Serves /metrics on listen_address ("host:port"); empty serves nothing.
  // Throws std::runtime_error when the address cannot be bound.
  explicit Metrics(const std::string& listen_address, const std::string& version);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The bound "host:port" (useful with port 0), or "" when not serving.
  std::string bound_address() const;

  void AttemptRecorded(std::string_view outcome, std::string_view error_class, double duration_seconds);
  void DeliveryFinished(std::string_view status, double lag_seconds);  // terminal states only
  void ClaimBatch(int size);
  void InFlight(int requests);
  void StatementDuration(std::string_view statement, double seconds);
  void LeasesRecovered(int count);
  void StaleOutcomes(int count);
  void DatabaseReconnect();
  void HeldDeliveries(int count);
  // Queue depth by state (due, scheduled, held, delivering, dead_lettered), from the
  // maintenance leader's periodic query; other daemons leave these at their last value.
  void QueueDepth(std::string_view state, double deliveries);
  void OldestDueSeconds(double seconds);
  void PausedSubscriptions(double count);
  void OpenCircuits(int count);
  void ConfigReload(bool success);
  void Leader(bool is_leader);
  void Pruned(int deliveries);

  // Integration runs.
  void RunAttemptRecorded(std::string_view outcome, std::string_view error_class, double duration_seconds);
  void RunFinished(std::string_view status);  // completed, failed, dead_lettered
  // Runs by state (due, scheduled, waiting, running, dead_lettered), from the maintenance leader.
  void RunQueueDepth(std::string_view state, double runs);
  void Connections(std::string_view condition, double count);  // unhealthy, degraded
  void CredentialsExpiring(double count);
  void OpenEscalations(double count);
  void ProbeRecorded(bool passed);
  void TokenRequest(bool succeeded);
  void CredentialRotation(bool promoted);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::metrics

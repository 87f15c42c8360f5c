// Metrics: the narrow interface the daemon reports through, so that no
// module depends on prometheus-cpp (only metrics/prometheus_metrics.cpp does)
// and tests pass a NullMetrics instead of null checks. Names follow
// Prometheus conventions (pgcourier_ prefix, base units, _total counters);
// labels are bounded (never a delivery id, URL or tenant). Implementations
// are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace pgcourier::metrics {

class Metrics {
 public:
  virtual ~Metrics() = default;

  // The bound port of the /metrics listener (useful with port 0), or "" when not serving.
  virtual std::string bound_address() const = 0;
  // What GET /readyz answers on the metrics address: 200 while ready, 503
  // with `reason` (one line) otherwise; also the pgcourier_ready gauge.
  // GET /healthz answers 200 while the process serves at all.
  virtual void Readiness(bool ready, std::string_view reason) = 0;

  virtual void AttemptRecorded(std::string_view outcome, std::string_view error_class, double duration_seconds) = 0;
  virtual void DeliveryFinished(std::string_view status, double lag_seconds) = 0;  // terminal states only
  virtual void ClaimBatch(int size) = 0;
  virtual void InFlight(int requests) = 0;
  virtual void StatementDuration(std::string_view statement, double seconds) = 0;
  virtual void LeasesRecovered(int count) = 0;
  virtual void StaleOutcomes(int count) = 0;
  virtual void DatabaseReconnect() = 0;
  virtual void HeldDeliveries(int count) = 0;
  // Queue depth by state (due, scheduled, held, delivering, dead_lettered), from the
  // maintenance leader's periodic query; other daemons leave these at their last value.
  virtual void QueueDepth(std::string_view state, double deliveries) = 0;
  virtual void OldestDueSeconds(double seconds) = 0;
  virtual void PausedSubscriptions(double count) = 0;
  virtual void OpenCircuits(int count) = 0;
  virtual void ConfigReload(bool success) = 0;
  virtual void Leader(bool is_leader) = 0;
  virtual void Pruned(int deliveries) = 0;
  // Due times and leases of the old clock moved back after a backward step of the database clock.
  virtual void ClockShifted(std::string_view lane, int due_times, int leases) = 0;

  // Integration runs.
  virtual void RunAttemptRecorded(std::string_view outcome, std::string_view error_class, double duration_seconds) = 0;
  virtual void RunFinished(std::string_view status) = 0;  // completed, failed, dead_lettered
  // Runs by state (due, scheduled, waiting, running, dead_lettered), from the maintenance leader.
  virtual void RunQueueDepth(std::string_view state, double runs) = 0;
  virtual void Connections(std::string_view condition, double count) = 0;  // unhealthy, degraded
  virtual void CredentialsExpiring(double count) = 0;
  virtual void OpenEscalations(double count) = 0;
  virtual void ProbeRecorded(bool passed) = 0;
  virtual void TokenRequest(bool succeeded) = 0;
  virtual void CredentialRotation(bool promoted) = 0;
};

// Reports nothing: for tests and tools.
class NullMetrics final : public Metrics {
 public:
  std::string bound_address() const override { return ""; }
  void Readiness(bool, std::string_view) override {}
  void AttemptRecorded(std::string_view, std::string_view, double) override {}
  void DeliveryFinished(std::string_view, double) override {}
  void ClaimBatch(int) override {}
  void InFlight(int) override {}
  void StatementDuration(std::string_view, double) override {}
  void LeasesRecovered(int) override {}
  void StaleOutcomes(int) override {}
  void DatabaseReconnect() override {}
  void HeldDeliveries(int) override {}
  void QueueDepth(std::string_view, double) override {}
  void OldestDueSeconds(double) override {}
  void PausedSubscriptions(double) override {}
  void OpenCircuits(int) override {}
  void ConfigReload(bool) override {}
  void Leader(bool) override {}
  void Pruned(int) override {}
  void ClockShifted(std::string_view, int, int) override {}
  void RunAttemptRecorded(std::string_view, std::string_view, double) override {}
  void RunFinished(std::string_view) override {}
  void RunQueueDepth(std::string_view, double) override {}
  void Connections(std::string_view, double) override {}
  void CredentialsExpiring(double) override {}
  void OpenEscalations(double) override {}
  void ProbeRecorded(bool) override {}
  void TokenRequest(bool) override {}
  void CredentialRotation(bool) override {}
};

// The prometheus-cpp implementation, serving /metrics on listen_address
// ("host:port"; empty: serves nothing). Throws std::runtime_error when the
// address cannot be bound.
std::unique_ptr<Metrics> NewPrometheusMetrics(const std::string& listen_address, const std::string& version);

}  // namespace pgcourier::metrics

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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::metrics

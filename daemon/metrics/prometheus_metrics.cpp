#include "metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <stdexcept>

namespace pgcourier::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

class PrometheusMetrics final : public Metrics {
 public:
  PrometheusMetrics(const std::string& listen_address, const std::string& version);
  std::string bound_address() const override;
  void AttemptRecorded(std::string_view outcome, std::string_view error_class, double duration_seconds) override;
  void DeliveryFinished(std::string_view status, double lag_seconds) override;
  void ClaimBatch(int size) override;
  void InFlight(int requests) override;
  void StatementDuration(std::string_view statement, double seconds) override;
  void LeasesRecovered(int count) override;
  void StaleOutcomes(int count) override;
  void DatabaseReconnect() override;
  void HeldDeliveries(int count) override;
  void QueueDepth(std::string_view state, double deliveries) override;
  void OldestDueSeconds(double seconds) override;
  void PausedSubscriptions(double count) override;
  void OpenCircuits(int count) override;
  void ConfigReload(bool success) override;
  void Leader(bool is_leader) override;
  void Pruned(int deliveries) override;
  void RunAttemptRecorded(std::string_view outcome, std::string_view error_class, double duration_seconds) override;
  void RunFinished(std::string_view status) override;
  void RunQueueDepth(std::string_view state, double runs) override;
  void Connections(std::string_view condition, double count) override;
  void CredentialsExpiring(double count) override;
  void OpenEscalations(double count) override;
  void ProbeRecorded(bool passed) override;
  void TokenRequest(bool succeeded) override;
  void CredentialRotation(bool promoted) override;
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct PrometheusMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<prometheus::Exposer> exposer;

  prometheus::Family<prometheus::Counter>& attempts =
      BuildCounter().Name("pgcourier_attempts_total").Help("HTTP attempts by outcome and error class").Register(*registry);
  prometheus::Family<prometheus::Counter>& finished =
      BuildCounter().Name("pgcourier_deliveries_finished_total").Help("Deliveries reaching a terminal state").Register(*registry);
  prometheus::Family<prometheus::Histogram>& attempt_duration =
      BuildHistogram().Name("pgcourier_attempt_duration_seconds").Help("Duration of one HTTP attempt").Register(*registry);
  prometheus::Family<prometheus::Histogram>& lag =
      BuildHistogram().Name("pgcourier_delivery_lag_seconds").Help("Event created to delivery delivered").Register(*registry);
  prometheus::Family<prometheus::Histogram>& claim_batch =
      BuildHistogram().Name("pgcourier_claim_batch_size").Help("Deliveries claimed per claim statement").Register(*registry);
  prometheus::Family<prometheus::Gauge>& in_flight =
      BuildGauge().Name("pgcourier_requests_in_flight").Help("HTTP requests in flight").Register(*registry);
  prometheus::Family<prometheus::Histogram>& statement =
      BuildHistogram().Name("pgcourier_db_statement_duration_seconds").Help("Database round trip by statement").Register(*registry);
  prometheus::Family<prometheus::Counter>& recovered =
      BuildCounter().Name("pgcourier_lease_expiries_recovered_total").Help("Expired leases taken back").Register(*registry);
  prometheus::Family<prometheus::Counter>& stale =
      BuildCounter().Name("pgcourier_stale_outcomes_total").Help("Results dropped because the lease had been taken over").Register(*registry);
  prometheus::Family<prometheus::Counter>& reconnects =
      BuildCounter().Name("pgcourier_db_reconnects_total").Help("Database reconnections").Register(*registry);
  prometheus::Family<prometheus::Counter>& held =
      BuildCounter().Name("pgcourier_deliveries_held_total").Help("Claimed deliveries put back unattempted (unknown policy)").Register(*registry);
  prometheus::Family<prometheus::Gauge>& queue_depth =
      BuildGauge().Name("pgcourier_queue_depth").Help("Unfinished deliveries by state (maintenance leader)").Register(*registry);
  prometheus::Family<prometheus::Gauge>& oldest_due =
      BuildGauge().Name("pgcourier_queue_oldest_due_seconds").Help("How long the oldest due delivery has waited").Register(*registry);
  prometheus::Family<prometheus::Gauge>& paused =
      BuildGauge().Name("pgcourier_subscriptions_paused").Help("Paused subscriptions").Register(*registry);
  prometheus::Family<prometheus::Gauge>& open_circuits =
      BuildGauge().Name("pgcourier_circuits_open").Help("Endpoints whose circuit is open in this daemon").Register(*registry);
  prometheus::Family<prometheus::Counter>& reloads =
      BuildCounter().Name("pgcourier_config_reloads_total").Help("Configuration reloads by result").Register(*registry);
  prometheus::Family<prometheus::Gauge>& leader =
      BuildGauge().Name("pgcourier_maintenance_leader").Help("1 while this daemon runs maintenance").Register(*registry);
  prometheus::Family<prometheus::Counter>& pruned =
      BuildCounter().Name("pgcourier_pruned_deliveries_total").Help("Finished deliveries removed by retention").Register(*registry);
  prometheus::Family<prometheus::Counter>& run_attempts =
      BuildCounter().Name("pgcourier_run_attempts_total").Help("Integration run attempts by outcome and error class").Register(*registry);
  prometheus::Family<prometheus::Histogram>& run_attempt_duration =
      BuildHistogram().Name("pgcourier_run_attempt_duration_seconds").Help("Duration of one run attempt").Register(*registry);
  prometheus::Family<prometheus::Counter>& runs_finished =
      BuildCounter().Name("pgcourier_runs_finished_total").Help("Integration runs reaching a terminal state").Register(*registry);
  prometheus::Family<prometheus::Gauge>& run_queue_depth =
      BuildGauge().Name("pgcourier_run_queue_depth").Help("Unfinished runs by state (maintenance leader)").Register(*registry);
  prometheus::Family<prometheus::Gauge>& connections =
      BuildGauge().Name("pgcourier_connections").Help("Connections that are unhealthy or degraded (maintenance leader)").Register(*registry);
  prometheus::Family<prometheus::Gauge>& credentials_expiring =
      BuildGauge().Name("pgcourier_credentials_expiring").Help("Credentials whose active version expires within credential_expiry_warning").Register(*registry);
  prometheus::Family<prometheus::Gauge>& open_escalations =
      BuildGauge().Name("pgcourier_escalations_open").Help("Escalations not acknowledged whose failure is unresolved").Register(*registry);
  prometheus::Family<prometheus::Counter>& probes =
      BuildCounter().Name("pgcourier_connection_probes_total").Help("Connection health checks by result").Register(*registry);
  prometheus::Family<prometheus::Counter>& token_requests =
      BuildCounter().Name("pgcourier_oauth_token_requests_total").Help("OAuth2 token requests by result").Register(*registry);
  prometheus::Family<prometheus::Counter>& rotations =
      BuildCounter().Name("pgcourier_credential_rotations_total").Help("Credential rotations verified, by result").Register(*registry);
  prometheus::Family<prometheus::Gauge>& build_info =
      BuildGauge().Name("pgcourier_build_info").Help("Build information").Register(*registry);

  static const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
    static const prometheus::Histogram::BucketBoundaries kBuckets = {
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    return kBuckets;
  }
};

PrometheusMetrics::PrometheusMetrics(const std::string& listen_address, const std::string& version)
    : impl_(std::make_unique<Impl>()) {
  impl_->build_info.Add({{"version", version}}).Set(1);
  impl_->in_flight.Add({}).Set(0);
  impl_->leader.Add({}).Set(0);
  // Counters exist from the start, so dashboards show 0 and increase() sees the first event.
  impl_->reconnects.Add({});
  impl_->recovered.Add({});
  impl_->stale.Add({});
  impl_->held.Add({});
  impl_->pruned.Add({});
  impl_->open_circuits.Add({}).Set(0);
  impl_->reloads.Add({{"result", "success"}});
  impl_->reloads.Add({{"result", "failure"}});
  for (const char* status : {"completed", "failed", "dead_lettered"}) impl_->runs_finished.Add({{"status", status}});
  for (const char* result : {"passed", "failed"}) impl_->probes.Add({{"result", result}});
  for (const char* result : {"success", "failure"}) impl_->token_requests.Add({{"result", result}});
  for (const char* result : {"promoted", "rejected"}) impl_->rotations.Add({{"result", result}});
  impl_->credentials_expiring.Add({}).Set(0);
  if (!listen_address.empty()) {
    try {
      impl_->exposer = std::make_unique<prometheus::Exposer>(listen_address);
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot serve metrics on " + listen_address + ": " + e.what());
    }
    impl_->exposer->RegisterCollectable(impl_->registry);
  }
}

std::string PrometheusMetrics::bound_address() const {
  if (!impl_->exposer) return "";
  const auto ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? "" : std::to_string(ports.front());
}

void PrometheusMetrics::AttemptRecorded(std::string_view outcome, std::string_view error_class, double duration_seconds) {
  impl_->attempts.Add({{"outcome", std::string(outcome)}, {"error_class", std::string(error_class)}}).Increment();
  impl_->attempt_duration.Add({}, Impl::DurationBuckets()).Observe(duration_seconds);
}

void PrometheusMetrics::DeliveryFinished(std::string_view status, double lag_seconds) {
  impl_->finished.Add({{"status", std::string(status)}}).Increment();
  if (status == "delivered") impl_->lag.Add({}, Impl::DurationBuckets()).Observe(lag_seconds);
}

void PrometheusMetrics::ClaimBatch(int size) {
  static const prometheus::Histogram::BucketBoundaries kSizes = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  impl_->claim_batch.Add({}, kSizes).Observe(size);
}

void PrometheusMetrics::InFlight(int requests) { impl_->in_flight.Add({}).Set(requests); }

void PrometheusMetrics::StatementDuration(std::string_view statement, double seconds) {
  impl_->statement.Add({{"statement", std::string(statement)}}, Impl::DurationBuckets()).Observe(seconds);
}

void PrometheusMetrics::LeasesRecovered(int count) { impl_->recovered.Add({}).Increment(count); }
void PrometheusMetrics::StaleOutcomes(int count) { impl_->stale.Add({}).Increment(count); }
void PrometheusMetrics::DatabaseReconnect() { impl_->reconnects.Add({}).Increment(); }
void PrometheusMetrics::HeldDeliveries(int count) { impl_->held.Add({}).Increment(count); }

void PrometheusMetrics::QueueDepth(std::string_view state, double deliveries) {
  impl_->queue_depth.Add({{"state", std::string(state)}}).Set(deliveries);
}
void PrometheusMetrics::OldestDueSeconds(double seconds) { impl_->oldest_due.Add({}).Set(seconds); }
void PrometheusMetrics::PausedSubscriptions(double count) { impl_->paused.Add({}).Set(count); }
void PrometheusMetrics::OpenCircuits(int count) { impl_->open_circuits.Add({}).Set(count); }
void PrometheusMetrics::ConfigReload(bool success) {
  impl_->reloads.Add({{"result", success ? "success" : "failure"}}).Increment();
}
void PrometheusMetrics::Leader(bool is_leader) { impl_->leader.Add({}).Set(is_leader ? 1 : 0); }
void PrometheusMetrics::Pruned(int deliveries) { impl_->pruned.Add({}).Increment(deliveries); }

void PrometheusMetrics::RunAttemptRecorded(std::string_view outcome, std::string_view error_class, double duration_seconds) {
  impl_->run_attempts.Add({{"outcome", std::string(outcome)}, {"error_class", std::string(error_class)}}).Increment();
  impl_->run_attempt_duration.Add({}, Impl::DurationBuckets()).Observe(duration_seconds);
}
void PrometheusMetrics::RunFinished(std::string_view status) { impl_->runs_finished.Add({{"status", std::string(status)}}).Increment(); }
void PrometheusMetrics::RunQueueDepth(std::string_view state, double runs) {
  impl_->run_queue_depth.Add({{"state", std::string(state)}}).Set(runs);
}
void PrometheusMetrics::Connections(std::string_view condition, double count) {
  impl_->connections.Add({{"condition", std::string(condition)}}).Set(count);
}
void PrometheusMetrics::CredentialsExpiring(double count) { impl_->credentials_expiring.Add({}).Set(count); }
void PrometheusMetrics::OpenEscalations(double count) { impl_->open_escalations.Add({}).Set(count); }
void PrometheusMetrics::ProbeRecorded(bool passed) { impl_->probes.Add({{"result", passed ? "passed" : "failed"}}).Increment(); }
void PrometheusMetrics::TokenRequest(bool succeeded) {
  impl_->token_requests.Add({{"result", succeeded ? "success" : "failure"}}).Increment();
}
void PrometheusMetrics::CredentialRotation(bool promoted) {
  impl_->rotations.Add({{"result", promoted ? "promoted" : "rejected"}}).Increment();
}

}  // namespace

std::unique_ptr<Metrics> NewPrometheusMetrics(const std::string& listen_address, const std::string& version) {
  return std::make_unique<PrometheusMetrics>(listen_address, version);
}

}  // namespace pgcourier::metrics

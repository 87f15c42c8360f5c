#include "metrics/metrics.hpp"

#include <CivetServer.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pgcourier::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// The HTTP side of the metrics address: /metrics (the registry in the text
// format), /healthz and /readyz. civetweb directly, as prometheus-cpp's own
// Exposer does, because the probes need their own status codes.
class Probes final : public CivetHandler {
 public:
  explicit Probes(std::shared_ptr<prometheus::Registry> registry) : registry_(std::move(registry)) {}

  void Set(bool ready, std::string_view reason) {
    std::lock_guard lock(mu_);
    ready_ = ready;
    reason_ = std::string(reason);
  }

  bool handleGet(CivetServer*, mg_connection* conn) override {
    const mg_request_info* request = mg_get_request_info(conn);
    const std::string uri = request && request->local_uri ? request->local_uri : "";
    if (uri == "/metrics") {
      std::ostringstream body;
      prometheus::TextSerializer().Serialize(body, registry_->Collect());
      Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", body.str());
    } else if (uri == "/healthz") {
      Reply(conn, 200, "text/plain; charset=utf-8", "alive\n");
    } else if (uri == "/readyz") {
      std::lock_guard lock(mu_);
      if (ready_) {
        Reply(conn, 200, "text/plain; charset=utf-8", "ready\n");
      } else {
        Reply(conn, 503, "text/plain; charset=utf-8", (reason_.empty() ? "not ready" : reason_) + "\n");
      }
    } else {
      Reply(conn, 404, "text/plain; charset=utf-8", "not found\n");
    }
    return true;
  }

 private:
  static void Reply(mg_connection* conn, int status, const char* type, const std::string& body) {
    const char* text = status == 200 ? "OK" : status == 503 ? "Service Unavailable" : "Not Found";
    mg_printf(conn, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n\r\n",
              status, text, type, body.size());
    mg_write(conn, body.data(), body.size());
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::mutex mu_;
  bool ready_ = false;                               // guarded by mu_
  std::string reason_ = "starting: not connected to the database yet";  // guarded by mu_
};

class PrometheusMetrics final : public Metrics {
 public:
  PrometheusMetrics(const std::string& listen_address, const std::string& version);
  ~PrometheusMetrics() override;
  std::string bound_address() const override;
  void Readiness(bool ready, std::string_view reason) override;
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
  void ClockShifted(std::string_view lane, int due_times, int leases) override;
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
  Probes http{registry};
  std::unique_ptr<CivetServer> server;  // after http: stopped before it goes
  std::string wake_host;                // where the destructor's connections reach the server

  prometheus::Family<prometheus::Gauge>& ready =
      BuildGauge().Name("pgcourier_ready").Help("1 while the daemon is ready (connected, schema current, not stopping)").Register(*registry);

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
  prometheus::Family<prometheus::Counter>& clock_shifted =
      BuildCounter().Name("pgcourier_clock_shifted_total").Help("Due times and leases of the old clock moved back after the database clock stepped back (maintenance leader)").Register(*registry);
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

namespace {

// Where a connection to `port` reaches a server listening on
// `listen_address` (civetweb's "[host:]port"; a wildcard host is reached on
// the loopback address of its family).
std::string WakeHost(const std::string& listen_address) {
  const auto colon = listen_address.rfind(':');
  std::string host = colon == std::string::npos ? "" : listen_address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

// One connection to host:port, closed at once; nothing is sent.
void Knock(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const bool connected = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    ::close(fd);
    if (connected) break;
  }
  freeaddrinfo(found);
}

}  // namespace

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
  impl_->ready.Add({}).Set(0);
  if (!listen_address.empty()) {
    try {
      const std::vector<std::string> options = {"listening_ports", listen_address, "num_threads", "2",
                                                "request_timeout_ms", "5000"};
      impl_->server = std::make_unique<CivetServer>(options);
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot serve metrics on " + listen_address + ": " + e.what());
    }
    for (const char* uri : {"/metrics", "/healthz", "/readyz"}) impl_->server->addHandler(uri, impl_->http);
    impl_->wake_host = WakeHost(listen_address);
  }
}

PrometheusMetrics::~PrometheusMetrics() {
  if (!impl_->server) return;
  // civetweb (1.15) notices a stop only when the poll of its listening
  // thread returns, which without a connection takes up to 2 s (its
  // SOCKET_TIMEOUT_QUANTUM): that held every exit of the daemon past its
  // shutdown_grace by up to 2 s. So while close() waits, connections of our
  // own wake that poll (civetweb, once stopping, accepts none of them).
  const std::vector<int> ports = impl_->server->getListeningPorts();
  const std::string& host = impl_->wake_host;
  std::atomic<bool> closed{false};
  std::thread knocker([&] {
    while (!closed.load()) {
      for (const int port : ports) Knock(host, port);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  impl_->server->close();
  closed = true;
  knocker.join();
}

std::string PrometheusMetrics::bound_address() const {
  if (!impl_->server) return "";
  const auto ports = impl_->server->getListeningPorts();
  return ports.empty() ? "" : std::to_string(ports.front());
}

void PrometheusMetrics::Readiness(bool ready, std::string_view reason) {
  impl_->http.Set(ready, reason);
  impl_->ready.Add({}).Set(ready ? 1 : 0);
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

void PrometheusMetrics::ClockShifted(std::string_view lane, int due_times, int leases) {
  impl_->clock_shifted.Add({{"lane", std::string(lane)}, {"what", "due_time"}}).Increment(due_times);
  impl_->clock_shifted.Add({{"lane", std::string(lane)}, {"what", "lease"}}).Increment(leases);
}

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

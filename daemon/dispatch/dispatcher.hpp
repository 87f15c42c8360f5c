// Dispatcher: the daemon's delivery loop. It owns the database connection
// (store::Store) and drives the HTTP executor:
//
//   claim due deliveries (never more than free in-flight slots)
//     -> build signed requests -> executor (its own thread)
//     -> completions -> classify / decide -> one batched write per loop turn
//
// It wakes on NOTIFY, on executor completions, on its control eventfd and on
// a jittered poll timer; it rescues expired leases of dead daemons; it
// survives losing the database (results wait in memory and are written after
// reconnecting; if the lease expires first, another daemon retries).
//
// Threading: Run() executes on one thread and owns everything inside.
// Drain(), Stop() and the ready callback's caller are thread-safe entry points.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "config/policies.hpp"
#include "config/settings.hpp"

namespace pgcourier::metrics {
class Metrics;
}
namespace pgcourier::signing {
class SecretBox;
}

namespace pgcourier::dispatch {

struct DispatcherOptions {
  config::Settings settings;
  std::shared_ptr<const config::PolicySet> policies;
  std::shared_ptr<const signing::SecretBox> secret_box;  // may be null: signed deliveries are held
  metrics::Metrics* metrics = nullptr;                    // may be null
  std::function<void()> on_ready;                         // called once, after the first claim round
  std::function<void()> heartbeat;                        // called every loop turn (systemd watchdog)
  std::chrono::milliseconds heartbeat_interval{0};        // the loop turns at least this often (0: no bound)
};

class Dispatcher {
 public:
  explicit Dispatcher(DispatcherOptions options);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Runs until drained or stopped. Returns 0 on a clean stop, 1 when the
  // daemon cannot run (schema too old), after logging why.
  int Run();

  // Stop claiming; let requests in flight finish within the grace period,
  // then abort the rest and release their leases. Thread-safe.
  void Drain();
  // New policies for the next claims; requests in flight keep the policy
  // they started with. Thread-safe.
  void ReplacePolicies(std::shared_ptr<const config::PolicySet> policies);
  // Abort everything now, release leases (best effort), return. Thread-safe.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::dispatch

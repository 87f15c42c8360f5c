// Engine: the daemon's one loop, for every lane (lanes/lane.hpp). It owns
// the threads (the HTTP executor's, the writer's), the main database
// session (claims, LISTEN, maintenance leadership) and its reconnects, the
// clock, the request slots and how they are shared between lanes, the
// drain/stop state machine (shutdown.hpp) and maintenance (maintenance.hpp).
// A lane owns one product's decisions; the engine knows none of them.
//
// Each turn: adopt new policies -> route executor completions to their
// lanes -> hand each lane's results to the writer (one job per lane at a
// time) and the written ones back -> coalesced outbox NOTIFY -> maintenance
// -> claims (never more than the free slots, shared between the lanes that
// want them) -> poll(control eventfd, completions, written jobs, the NOTIFY
// socket, timers).
//
// Threading: Run() on one thread, which owns everything inside; Drain(),
// Stop() and ReplacePolicies() are thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "base/clock.hpp"
#include "config/policies.hpp"
#include "config/settings.hpp"
#include "lanes/context.hpp"
#include "lanes/lane.hpp"
#include "metrics/metrics.hpp"

namespace pgcourier::signing {
class SecretBox;
}

namespace pgcourier::engine {

using LaneFactory = std::function<std::unique_ptr<lanes::Lane>(const lanes::LaneContext&)>;

struct EngineOptions {
  config::Settings settings;
  std::shared_ptr<const config::PolicySet> policies;
  std::shared_ptr<const signing::SecretBox> secret_box;  // may be null: signed or credentialed work is held
  const base::Clock* clock = nullptr;                     // null: the system clock
  metrics::Metrics* metrics = nullptr;                    // null: none
  std::vector<LaneFactory> lanes;                         // in claim order
  std::function<void()> on_ready;                         // once, after the first claim round
  std::function<void()> heartbeat;                        // every loop turn (systemd watchdog)
  std::chrono::milliseconds heartbeat_interval{0};        // the loop turns at least this often (0: no bound)
};

class Engine {
 public:
  explicit Engine(EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

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

}  // namespace pgcourier::engine

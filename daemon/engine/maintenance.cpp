#include "engine/maintenance.hpp"

#include <spdlog/spdlog.h>

#include "engine/writer.hpp"
#include "store/session.hpp"

namespace pgcourier::engine {
namespace {

// One step of maintenance: a failed statement is logged and the next step
// runs; a lost connection ends the tick (the engine reconnects).
template <typename Fn>
void Step(const char* what, const char* lane, Fn&& fn) {
  try {
    fn();
  } catch (const store::StoreError& e) {
    if (e.kind() == store::StoreError::Kind::kConnectionLost) throw;
    spdlog::error("maintenance: {} ({}) failed: {}", what, lane, e.what());
  }
}

}  // namespace

Maintenance::Maintenance(const config::Settings& settings, const base::Clock& clock, metrics::Metrics& metrics)
    : settings_(settings), clock_(clock), metrics_(metrics) {}

void Maintenance::ConnectionLost() {
  if (!leader_) return;
  leader_ = false;
  metrics_.Leader(false);
}

void Maintenance::Tick(store::Session& main, const lanes::Stores& stores, const std::vector<lanes::Lane*>& lanes,
                       Writer& writer) {
  const auto now = clock_.Now();
  if (now >= next_rescue_) {
    next_rescue_ = now + settings_.rescue_interval;
    if (!leader_) {
      leader_ = main.TryBecomeLeader();
      if (leader_) {
        spdlog::info("this daemon ({}) now runs maintenance: lease rescue, queue metrics, retention, probes",
                     settings_.worker_id);
        metrics_.Leader(true);
        next_maintenance_ = now;
      }
    }
    if (leader_ && now >= rescue_not_before_) {
      for (auto* lane : lanes) {
        if (rescuing_.count(lane)) continue;  // the previous rescue is not written yet: it would find the same rows
        Step("rescuing expired leases", lane->name(), [&] {
          if (auto job = lane->Rescue(stores)) {
            rescuing_.insert(lane);
            writer.Submit(lane, std::move(job), /*turn=*/false);
          }
        });
      }
    }
  }
  if (leader_ && now >= next_maintenance_) {
    next_maintenance_ = now + settings_.maintenance_interval;
    for (auto* lane : lanes) {
      Step("refreshing metrics, probes and rotations", lane->name(), [&] { lane->Maintain(stores); });
      Step("retention", lane->name(), [&] { lane->Prune(stores); });
    }
  }
}

}  // namespace pgcourier::engine

#include "engine/retention.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "store/deliveries_store.hpp"
#include "store/runs_store.hpp"
#include "store/watchdog.hpp"

namespace pgcourier::engine {

Retention::Retention(RetentionOptions options) : options_(std::move(options)) {}

Retention::~Retention() { Stop(); }

void Retention::Start(std::vector<const lanes::Lane*> lanes) {
  lanes_ = std::move(lanes);
  thread_ = std::thread([this] { Run(); });
}

void Retention::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Retention::SetLeader(bool leader) {
  {
    std::lock_guard lock(mu_);
    if (leader == leader_) return;
    leader_ = leader;
  }
  wake_.notify_all();
}

void Retention::Run() {
  std::unique_lock lock(mu_);
  auto next = std::chrono::steady_clock::time_point{};  // the first sweep as soon as this daemon leads
  while (!stop_) {
    if (!leader_) {
      wake_.wait(lock);
      continue;
    }
    if (std::chrono::steady_clock::now() < next) {
      wake_.wait_until(lock, next);
      continue;
    }
    const auto started = std::chrono::steady_clock::now();
    lock.unlock();
    Sweep();
    lock.lock();
    // From the end of the sweep, and at least as long as it took: retention
    // keeps the database at most half as busy as it could, so the catch-up
    // after a held snapshot ends (minutes of finished work at once) shares
    // the cores with the deliveries instead of taking them.
    const auto ended = std::chrono::steady_clock::now();
    next = ended + std::max<std::chrono::steady_clock::duration>(options_.interval, ended - started);
  }
}

void Retention::Sweep() {
  for (const auto* lane : lanes_) {
    try {
      if (!session_) {
        if (options_.session.watchdog && options_.session.watchdog->interrupted()) return;
        session_ = std::make_unique<store::Session>(options_.session);
        deliveries_ = store::NewDeliveriesStore(*session_, options_.delivery_events);
        runs_ = store::NewRunsStore(*session_);
      }
      lane->Prune(lanes::Stores{*deliveries_, *runs_});
    } catch (const store::StoreError& e) {
      if (e.kind() == store::StoreError::Kind::kConnectionLost || !session_) {
        runs_.reset();
        deliveries_.reset();
        session_.reset();
        spdlog::warn("retention: database unreachable ({}); trying again in {} ms", e.what(),
                     options_.interval.count());
        return;
      }
      // One lane's failed statement does not stop the other's retention.
      spdlog::error("retention ({}) failed: {}", lane->name(), e.what());
    }
  }
}

}  // namespace pgcourier::engine

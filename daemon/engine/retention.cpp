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
      if (session_) {  // another daemon sweeps now: no connection held for nothing
        lock.unlock();
        DropSession();
        lock.lock();
        continue;
      }
      wake_.wait(lock);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!session_ && now >= next_connect_) {  // just became the leader, or lost the session: connect now
      lock.unlock();
      EnsureSession();
      lock.lock();
      continue;
    }
    if (now < next) {
      wake_.wait_until(lock, std::min({next, now + kLivenessCheck, session_ ? next : next_connect_}));
      if (stop_ || !leader_) continue;
      lock.unlock();
      EnsureSession();
      lock.lock();
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

bool Retention::EnsureSession() {
  try {
    if (session_) {
      session_->TakeNotifications();  // none are listened for: this only reads, and fails if the server closed it
      return true;
    }
    if (std::chrono::steady_clock::now() < next_connect_) return false;
    if (options_.session.watchdog && options_.session.watchdog->interrupted()) return false;
    session_ = std::make_unique<store::Session>(options_.session);
    deliveries_ = store::NewDeliveriesStore(*session_, options_.delivery_events);
    runs_ = store::NewRunsStore(*session_);
    reconnect_.Reset();
    return true;
  } catch (const store::StoreError& e) {
    LoseSession(e);
    return false;
  }
}

void Retention::DropSession() {
  runs_.reset();  // the stores first: they refer to the session
  deliveries_.reset();
  session_.reset();
}

void Retention::LoseSession(const store::StoreError& e) {
  const bool had = session_ != nullptr;
  DropSession();
  const auto delay = had ? std::chrono::milliseconds(0) : reconnect_.Next();  // a lost one is replaced at once
  next_connect_ = std::chrono::steady_clock::now() + delay;
  spdlog::warn("retention: database connection {} ({}); trying again in {} ms", had ? "lost" : "failed", e.what(),
               delay.count());
}

void Retention::Sweep() {
  for (const auto* lane : lanes_) {
    if (!EnsureSession()) return;
    try {
      lane->Prune(lanes::Stores{*deliveries_, *runs_});
    } catch (const store::StoreError& e) {
      if (e.kind() == store::StoreError::Kind::kConnectionLost) {
        LoseSession(e);
        return;
      }
      // One lane's failed statement does not stop the other's retention.
      spdlog::error("retention ({}) failed: {}", lane->name(), e.what());
    }
  }
}

}  // namespace pgcourier::engine

#include "store/watchdog.hpp"

#include <sys/socket.h>

#include <algorithm>

namespace pgcourier::store {

Watchdog::Watchdog() : thread_([this] { Loop(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Watchdog::Armed::Armed(Watchdog& watchdog, int socket, std::chrono::milliseconds timeout) : watchdog_(watchdog) {
  std::lock_guard<std::mutex> lock(watchdog_.mu_);
  id_ = watchdog_.next_id_++;
  Entry& entry = watchdog_.armed_[id_] = Entry{socket, Clock::now() + timeout};
  if (watchdog_.interrupted_) {
    watchdog_.FireLocked(entry);
  } else if (entry.deadline < watchdog_.sleeping_until_) {
    watchdog_.cv_.notify_all();  // an earlier deadline than the one the thread waits for
  }
}

Watchdog::Armed::~Armed() {
  std::lock_guard<std::mutex> lock(watchdog_.mu_);
  watchdog_.armed_.erase(id_);
}

bool Watchdog::Armed::fired() const {
  std::lock_guard<std::mutex> lock(watchdog_.mu_);
  const auto it = watchdog_.armed_.find(id_);
  return it != watchdog_.armed_.end() && it->second.fired;
}

void Watchdog::Interrupt() {
  std::lock_guard<std::mutex> lock(mu_);
  interrupted_ = true;
  for (auto& [id, entry] : armed_) FireLocked(entry);
}

bool Watchdog::interrupted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return interrupted_;
}

void Watchdog::FireLocked(Entry& entry) {
  if (entry.fired) return;
  entry.fired = true;
  // The owner is blocked in a call on this socket and disarms only under
  // mu_, so the descriptor is still its connection's: shut it down, never
  // close it (libpq does that when the owner drops the connection).
  if (entry.socket >= 0) ::shutdown(entry.socket, SHUT_RDWR);
}

void Watchdog::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    auto next = Clock::time_point::max();
    const auto now = Clock::now();
    for (auto& [id, entry] : armed_) {
      if (entry.fired) continue;
      if (entry.deadline <= now) {
        FireLocked(entry);
      } else {
        next = std::min(next, entry.deadline);
      }
    }
    sleeping_until_ = next;
    if (next == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next);
    }
  }
}

}  // namespace pgcourier::store

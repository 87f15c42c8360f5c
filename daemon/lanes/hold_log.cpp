#include "lanes/hold_log.hpp"

#include <spdlog/spdlog.h>

namespace pgcourier::lanes {

void HoldLog::Held(const std::string& key, const std::string& reason) {
  auto& entry = entries_[key];
  const auto now = clock_.Now();
  entry.reason = reason;
  if (entry.logged == std::chrono::steady_clock::time_point{} || now - entry.logged >= kHoldDelay) {
    Log(key, entry, entry.pending + 1);
  } else {
    ++entry.pending;
  }
}

void HoldLog::Flush() {
  const auto now = clock_.Now();
  if (now < next_flush_) return;
  next_flush_ = now + std::chrono::seconds(1);
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto& [key, entry] = *it;
    if (now - entry.logged >= kHoldDelay) {
      if (entry.pending == 0) {
        it = entries_.erase(it);  // quiet for a whole period: forget the key
        continue;
      }
      Log(key, entry, entry.pending);
    }
    ++it;
  }
}

void HoldLog::Log(const std::string& key, Entry& entry, long long count) {
  spdlog::warn("{} {} of {} {} held for {} s: {}", count, what_, key_name_, key, kHoldDelay.count() / 1000,
               entry.reason);
  entry.logged = clock_.Now();
  entry.pending = 0;
}

}  // namespace pgcourier::lanes

#include "lanes/deliveries/scan_floors.hpp"

#include <algorithm>
#include <limits>

namespace pgcourier::lanes::deliveries {

bool ScanFloors::Bound(store::DeliveryClaimRequest& request) {
  const auto now = clock_.Now();
  if (!last_full_ || now - *last_full_ >= full_every_) {
    last_full_ = now;
    bounded_since_full_ = false;
    request.floor_subscriptions.clear();
    request.floor_due_us.clear();
    request.other_floor_us.reset();
    return true;
  }
  const std::int64_t slack_us = std::chrono::duration_cast<std::chrono::microseconds>(kSlack).count();
  std::int64_t lowest = std::numeric_limits<std::int64_t>::max();
  for (auto it = floors_.begin(); it != floors_.end();) {
    if (now - it->second.taken >= kForgetAfter) {
      it = floors_.erase(it);
      continue;
    }
    const std::int64_t at = it->second.due_us - slack_us;
    request.floor_subscriptions.push_back(it->first);
    request.floor_due_us.push_back(at);
    lowest = std::min(lowest, at);
    ++it;
  }
  // The others (and the visit) start no later than the lowest floor: a
  // subscription without one has had no first attempt claimed here lately,
  // and its rows are due since about now, or are found by the full scan.
  if (!floors_.empty()) request.other_floor_us = lowest;
  bounded_since_full_ = true;
  return false;
}

void ScanFloors::Claimed(const std::vector<std::pair<std::string, std::int64_t>>& first_attempts) {
  const auto now = clock_.Now();
  std::unordered_map<std::string, std::int64_t> oldest;
  for (const auto& [subscription, due_us] : first_attempts) {
    auto [it, fresh] = oldest.try_emplace(subscription, due_us);
    if (!fresh) it->second = std::min(it->second, due_us);
  }
  // Replaced, not lowered: the rows before the oldest one this claim took
  // were taken before (or hidden, for the full scan to find).
  for (const auto& [subscription, due_us] : oldest) floors_[subscription] = Floor{due_us, now};
}

std::optional<base::Clock::Steady> ScanFloors::full_scan_due() const {
  if (!bounded_since_full_ || !last_full_) return std::nullopt;
  return *last_full_ + full_every_;
}

void ScanFloors::FullScanTook(base::Clock::Steady::duration took) {
  full_every_ = std::clamp<base::Clock::Steady::duration>(took * kFullScanShare, kFullScanEvery, kFullScanEveryMax);
}

}  // namespace pgcourier::lanes::deliveries

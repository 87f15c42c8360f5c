#include "lanes/limiter.hpp"

#include <algorithm>

namespace pgcourier::lanes {

std::optional<Wait> Limiter::Admit(const std::string& key, const LimitSpec& spec, std::int64_t now_ms) {
  static const model::Policy::Limits kNone;
  const auto& policy = spec.policy ? *spec.policy : kNone;
  const int max_in_flight = spec.max_in_flight > 0 ? spec.max_in_flight : policy.max_in_flight;
  if (max_in_flight > 0) {
    const auto it = in_flight_.find(key);
    if (it != in_flight_.end() && it->second >= max_in_flight) {
      return Wait{kInFlightWaitMs, "waiting: " + what_ + " at its limit of " + std::to_string(max_in_flight) +
                                       " request(s) in flight"};
    }
  }
  std::int64_t wait = 0;
  if (!rates_.TryTake(key, spec.rate_per_second, spec.rate_burst, policy, now_ms, wait)) {
    return Wait{std::max<std::int64_t>(wait, 1), "waiting: " + what_ + " rate limit"};
  }
  ++in_flight_[key];
  return std::nullopt;
}

void Limiter::Done(const std::string& key) {
  const auto it = in_flight_.find(key);
  if (it == in_flight_.end()) return;
  if (--it->second <= 0) in_flight_.erase(it);
}

int Limiter::in_flight(const std::string& key) const {
  const auto it = in_flight_.find(key);
  return it == in_flight_.end() ? 0 : it->second;
}

}  // namespace pgcourier::lanes

#include "limits/limits.hpp"

#include <algorithm>
#include <cmath>

namespace pgcourier::limits {

TokenBucket::TokenBucket(double rate_per_second, double burst, std::int64_t now_ms)
    : rate_(rate_per_second), burst_(std::max(1.0, burst)), tokens_(std::max(1.0, burst)), last_ms_(now_ms) {}

void TokenBucket::Reconfigure(double rate_per_second, double burst) {
  rate_ = rate_per_second;
  burst_ = std::max(1.0, burst);
  tokens_ = std::min(tokens_, burst_);
}

void TokenBucket::Refill(std::int64_t now_ms) {
  if (now_ms > last_ms_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
    last_ms_ = now_ms;
  }
}

bool TokenBucket::TryTake(std::int64_t now_ms, std::int64_t& wait_ms) {
  Refill(now_ms);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    wait_ms = 0;
    return true;
  }
  wait_ms = rate_ > 0 ? static_cast<std::int64_t>(std::ceil((1.0 - tokens_) * 1000.0 / rate_)) : 1000;
  wait_ms = std::max<std::int64_t>(wait_ms, 1);
  return false;
}

bool CircuitBreaker::Allow(std::int64_t now_ms, std::int64_t& wait_ms) {
  wait_ms = 0;
  if (!open_) return true;
  if (now_ms < open_until_ms_) {
    wait_ms = open_until_ms_ - now_ms;
    return false;
  }
  // The probe's answer decides; but a probe that never reports back (its
  // request was dropped) must not keep the circuit shut forever.
  if (probe_in_flight_ && now_ms - probe_started_ms_ < kProbeTimeoutMs) {
    wait_ms = 1000;
    return false;
  }
  probe_in_flight_ = true;
  probe_started_ms_ = now_ms;
  return true;
}

void CircuitBreaker::OnSuccess() {
  consecutive_failures_ = 0;
  open_ = false;
  probe_in_flight_ = false;
}

bool CircuitBreaker::OnFailure(std::int64_t now_ms, int failures_to_open, std::int64_t cooldown_ms) {
  ++consecutive_failures_;
  const bool was_probe = open_ && probe_in_flight_;
  probe_in_flight_ = false;
  if (was_probe || (!open_ && failures_to_open > 0 && consecutive_failures_ >= failures_to_open)) {
    const bool opened_now = !open_;
    open_ = true;
    open_until_ms_ = now_ms + cooldown_ms;
    return opened_now || was_probe;
  }
  return false;
}

CircuitBreaker::State CircuitBreaker::state(std::int64_t now_ms) const {
  if (!open_) return State::kClosed;
  return now_ms < open_until_ms_ ? State::kOpen : State::kHalfOpen;
}

bool KeyedRateLimiter::TryTake(const std::string& key, double own_rate, int own_burst,
                               const model::Policy::Limits& policy, std::int64_t now_ms, std::int64_t& wait_ms) {
  const double rate = own_rate > 0 ? own_rate : policy.per_second;
  if (rate <= 0) return true;
  const double burst = own_burst > 0 ? own_burst : (policy.burst > 0 ? policy.burst : rate);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    it = buckets_.emplace(key, TokenBucket(rate, burst, now_ms)).first;
  } else {
    it->second.Reconfigure(rate, burst);
  }
  return it->second.TryTake(now_ms, wait_ms);
}

}  // namespace pgcourier::limits

// Per-subscription rate limiting and per-endpoint circuit breaking: pure state
// machines. Time is passed in (steady milliseconds), so tests need no sleeps.
// Not synchronised: owned by the engine thread (lanes/limiter.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "model/policy.hpp"

namespace pgcourier::limits {

// Token bucket: `rate` tokens per second, at most `burst` stored.
class TokenBucket {
 public:
  TokenBucket(double rate_per_second, double burst, std::int64_t now_ms);
  // Takes one token if there is one. Otherwise returns false and sets
  // wait_ms to the time until the next token.
  bool TryTake(std::int64_t now_ms, std::int64_t& wait_ms);
  void Reconfigure(double rate_per_second, double burst);

 private:
  void Refill(std::int64_t now_ms);
  double rate_;
  double burst_;
  double tokens_;
  std::int64_t last_ms_;
};

// One token bucket per key (a subscription, a connection), created on first
// use. The rate is the key's own when set (> 0), else the policy's; the burst
// likewise, else the rate. No rate: always allowed.
class KeyedRateLimiter {
 public:
  // Takes a token for `key`; false with wait_ms set when there is none.
  bool TryTake(const std::string& key, double own_rate, int own_burst, const model::Policy::Limits& policy,
               std::int64_t now_ms, std::int64_t& wait_ms);

 private:
  std::unordered_map<std::string, TokenBucket> buckets_;
};

// Closed -> (failures_to_open consecutive failures) -> open for cooldown ->
// half-open: one probe passes; its success closes, its failure re-opens.
class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  // May a request be sent now? When not, wait_ms is how long until it may.
  // In half-open, only one probe is let through until its result is known.
  bool Allow(std::int64_t now_ms, std::int64_t& wait_ms);
  void OnSuccess();
  // Returns true when this failure opened the circuit.
  bool OnFailure(std::int64_t now_ms, int failures_to_open, std::int64_t cooldown_ms);
  State state(std::int64_t now_ms) const;

 private:
  int consecutive_failures_ = 0;
  std::int64_t open_until_ms_ = 0;
  bool open_ = false;
  bool probe_in_flight_ = false;
  std::int64_t probe_started_ms_ = 0;
  static constexpr std::int64_t kProbeTimeoutMs = std::int64_t{15} * 60 * 1000;  // longer than any request timeout
};

}  // namespace pgcourier::limits

// RateLimiter: a token bucket per key (an API token's id, an ingress source),
// in this process's memory. Several gateways side by side each allow the
// rate, so the fleet's limit is N times it: a bound against a runaway client,
// not an exact quota (documented in the README). Keys idle for a minute are
// forgotten. The clock is injected so tests need no sleeping.
// Thread-safe (one mutex).
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace pgcourier::gateway {

class RateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // rate_per_second > 0; burst >= 1.
  RateLimiter(double rate_per_second, double burst, Clock clock = std::chrono::steady_clock::now);

  // True when the key may make one more request now (and takes a token).
  // Otherwise false, and *retry_after_seconds says when the next one is free.
  bool Allow(const std::string& key, int* retry_after_seconds = nullptr);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point updated;
  };
  const double rate_;
  const double burst_;
  const Clock clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;  // guarded by mu_
  std::chrono::steady_clock::time_point last_sweep_;  // guarded by mu_
};

}  // namespace pgcourier::gateway

#include "rate_limit.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pgcourier::gateway {

RateLimiter::RateLimiter(double rate_per_second, double burst, Clock clock)
    : rate_(rate_per_second), burst_(burst), clock_(std::move(clock)) {
  if (!(rate_ > 0) || !(burst_ >= 1)) throw std::invalid_argument("rate limit: rate > 0 and burst >= 1 needed");
  last_sweep_ = clock_();
}

bool RateLimiter::Allow(const std::string& key, int* retry_after_seconds) {
  const auto now = clock_();
  std::lock_guard lock(mu_);
  if (now - last_sweep_ > std::chrono::minutes(1)) {
    // A bucket idle this long is full again: forgetting it changes nothing.
    std::erase_if(buckets_, [&](const auto& kv) { return now - kv.second.updated > std::chrono::minutes(1); });
    last_sweep_ = now;
  }
  auto [it, inserted] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!inserted) {
    const double elapsed = std::chrono::duration<double>(now - b.updated).count();
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.updated = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return true;
  }
  if (retry_after_seconds) *retry_after_seconds = std::max(1, static_cast<int>(std::ceil((1 - b.tokens) / rate_)));
  return false;
}

}  // namespace pgcourier::gateway

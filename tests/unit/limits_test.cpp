#include <doctest/doctest.h>

#include "limits/limits.hpp"

using pgcourier::limits::CircuitBreaker;
using pgcourier::limits::TokenBucket;

TEST_CASE("a token bucket lets a burst through, then one request per 1/rate seconds") {
  TokenBucket bucket(2.0, 3.0, 0);
  std::int64_t wait = -1;
  CHECK(bucket.TryTake(0, wait));
  CHECK(bucket.TryTake(0, wait));
  CHECK(bucket.TryTake(0, wait));
  CHECK_FALSE(bucket.TryTake(0, wait));
  CHECK(wait == 500);
  CHECK_FALSE(bucket.TryTake(499, wait));
  CHECK(wait >= 1);  // about 1 ms left (floating point may round it up to 2)
  CHECK(wait <= 2);
  CHECK(bucket.TryTake(500, wait));
  CHECK_FALSE(bucket.TryTake(500, wait));
  // Idle for a long time: refills only up to the burst.
  CHECK(bucket.TryTake(100000, wait));
  CHECK(bucket.TryTake(100000, wait));
  CHECK(bucket.TryTake(100000, wait));
  CHECK_FALSE(bucket.TryTake(100000, wait));
}

TEST_CASE("a token bucket with a burst below one still lets one request through") {
  TokenBucket bucket(0.5, 0.0, 0);
  std::int64_t wait = 0;
  CHECK(bucket.TryTake(0, wait));
  CHECK_FALSE(bucket.TryTake(0, wait));
  CHECK(wait == 2000);
}

TEST_CASE("the circuit opens after the configured run of failures and lets one probe through after the cooldown") {
  CircuitBreaker breaker;
  std::int64_t wait = 0;
  CHECK(breaker.Allow(0, wait));
  CHECK_FALSE(breaker.OnFailure(0, 3, 1000));
  CHECK_FALSE(breaker.OnFailure(1, 3, 1000));
  CHECK(breaker.state(1) == CircuitBreaker::State::kClosed);
  CHECK(breaker.OnFailure(2, 3, 1000));  // third failure opens
  CHECK(breaker.state(2) == CircuitBreaker::State::kOpen);
  CHECK_FALSE(breaker.Allow(500, wait));
  CHECK(wait == 502);
  CHECK(breaker.state(1002) == CircuitBreaker::State::kHalfOpen);
  CHECK(breaker.Allow(1002, wait));        // the probe
  CHECK_FALSE(breaker.Allow(1003, wait));  // only one probe at a time
  CHECK(breaker.OnFailure(1100, 3, 1000)); // probe failed: open again for a full cooldown
  CHECK_FALSE(breaker.Allow(2000, wait));
  CHECK(wait == 100);
  CHECK(breaker.Allow(2100, wait));
  breaker.OnSuccess();                      // probe succeeded: closed
  CHECK(breaker.state(2100) == CircuitBreaker::State::kClosed);
  CHECK(breaker.Allow(2100, wait));
  CHECK(breaker.Allow(2100, wait));
}

TEST_CASE("a success resets the failure run, and failures_to_open 0 never opens") {
  CircuitBreaker breaker;
  CHECK_FALSE(breaker.OnFailure(0, 2, 1000));
  breaker.OnSuccess();
  CHECK_FALSE(breaker.OnFailure(0, 2, 1000));
  CHECK(breaker.state(0) == CircuitBreaker::State::kClosed);
  CircuitBreaker off;
  for (int i = 0; i < 100; ++i) CHECK_FALSE(off.OnFailure(i, 0, 1000));
  std::int64_t wait = 0;
  CHECK(off.Allow(100, wait));
}

TEST_CASE("a probe that never reports back stops blocking the circuit after the probe timeout") {
  CircuitBreaker breaker;
  std::int64_t wait = 0;
  CHECK(breaker.OnFailure(0, 1, 1000));
  CHECK(breaker.Allow(1000, wait));         // the probe is let through...
  CHECK_FALSE(breaker.Allow(2000, wait));   // ...and its answer never comes
  CHECK(breaker.Allow(1000 + 15 * 60 * 1000, wait));  // eventually another probe may go
}

TEST_CASE("keyed rate limits use the key's own rate, else the policy's, each key its own bucket") {
  pgcourier::limits::KeyedRateLimiter limiter;
  pgcourier::model::Policy::Limits policy;
  std::int64_t wait = 0;
  // No rate anywhere: always allowed.
  for (int i = 0; i < 100; ++i) CHECK(limiter.TryTake("free", 0, 0, policy, 0, wait));
  // The policy's rate with its burst of 2.
  policy.per_second = 1;
  policy.burst = 2;
  CHECK(limiter.TryTake("a", 0, 0, policy, 0, wait));
  CHECK(limiter.TryTake("a", 0, 0, policy, 0, wait));
  CHECK_FALSE(limiter.TryTake("a", 0, 0, policy, 0, wait));
  CHECK(wait > 0);
  // Another key has its own bucket; its own rate and burst win over the policy's.
  for (int i = 0; i < 5; ++i) CHECK(limiter.TryTake("b", 10, 5, policy, 0, wait));
  CHECK_FALSE(limiter.TryTake("b", 10, 5, policy, 0, wait));
  CHECK(limiter.TryTake("b", 10, 5, policy, 100, wait));  // 10/s: one more token after 100 ms
}

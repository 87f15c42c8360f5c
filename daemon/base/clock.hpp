// Time, injected: every decision that depends on time (leases, holds, rate
// limits, circuit breakers, token lifetimes, probe intervals, shutdown
// deadlines) asks a Clock, so tests drive it with a ManualClock instead of
// sleeping. Steady time orders events inside this process; unix time is what
// goes into rows and headers (webhook-timestamp, attempt started_at).
// SystemClock is stateless and thread-safe; ManualClock is for one test thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgcourier::base {

class Clock {
 public:
  using Steady = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual Steady Now() const = 0;
  virtual std::int64_t UnixMicros() const = 0;

  // Steady milliseconds since the clock's epoch (for the limits' integer time).
  std::int64_t SteadyMillis() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Now().time_since_epoch()).count();
  }
};

class SystemClock final : public Clock {
 public:
  Steady Now() const override { return std::chrono::steady_clock::now(); }
  std::int64_t UnixMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t unix_micros = 1'800'000'000'000'000) : unix_us_(unix_micros) {}
  Steady Now() const override { return steady_; }
  std::int64_t UnixMicros() const override { return unix_us_; }
  void Advance(std::chrono::microseconds by) {
    steady_ += by;
    unix_us_ += by.count();
  }

 private:
  Steady steady_{std::chrono::hours(1)};
  std::int64_t unix_us_;
};

}  // namespace pgcourier::base

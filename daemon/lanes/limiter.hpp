// Limiter: the in-flight and rate limits of one kind of key (subscriptions
// for deliveries, connections for runs), shared by both lanes. Over a limit,
// an item goes back to the database to wait: not failed, no attempt spent,
// its lease released at once. A pure state machine: time is passed in.
// Not synchronised: the engine's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "limits/limits.hpp"
#include "model/policy.hpp"

namespace pgcourier::lanes {

// A key's own limits (0: the policy's) and the policy's.
struct LimitSpec {
  int max_in_flight = 0;
  double rate_per_second = 0;
  int rate_burst = 0;
  const model::Policy::Limits* policy = nullptr;
};

// How long to wait and why, for the release.
struct Wait {
  std::int64_t delay_ms = 0;
  std::string reason;
};

// Releases that wait for a free in-flight slot look again after this.
inline constexpr std::int64_t kInFlightWaitMs = 50;

class Limiter {
 public:
  // `what` names the key in reasons ("subscription", "connection").
  explicit Limiter(std::string what) : what_(std::move(what)) {}

  // May an item of `key` start now? nullopt: yes, and it counts in flight
  // until Done(key). Otherwise how long to wait and why.
  std::optional<Wait> Admit(const std::string& key, const LimitSpec& spec, std::int64_t now_ms);
  // An admitted item of `key` finished (or was given back).
  void Done(const std::string& key);
  int in_flight(const std::string& key) const;

 private:
  std::string what_;
  std::unordered_map<std::string, int> in_flight_;
  limits::KeyedRateLimiter rates_;
};

}  // namespace pgcourier::lanes

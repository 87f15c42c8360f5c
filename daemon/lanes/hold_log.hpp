// Holds: work that cannot be attempted now for a reason an operator must fix
// (an unknown policy, no master key, a secret that does not open) goes back
// to the database for kHoldDelay with the reason in last_error ("held: ...").
// HoldLog says so once per key (a subscription, a connection) per period,
// with a count, instead of one line per item: 10,000 held deliveries of one
// subscription are one log line every 30 s, not 10,000.
// Not synchronised: the engine's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "base/clock.hpp"
#include "model/policy.hpp"

namespace pgcourier::lanes {

// How long held work waits before it is looked at again.
inline constexpr model::Millis kHoldDelay{30000};
// Prefix of last_error on held work; wake_held looks for it.
inline constexpr const char* kHeldPrefix = "held: ";

class HoldLog {
 public:
  // `what` names the items ("delivery(ies)", "run(s)"), `key_name` the key ("subscription", "connection").
  HoldLog(const base::Clock& clock, std::string what, std::string key_name)
      : clock_(clock), what_(std::move(what)), key_name_(std::move(key_name)) {}

  // One item of `key` held for `reason`: logged now when the key has not
  // been logged within the period, else counted for the next line.
  void Held(const std::string& key, const std::string& reason);
  // Logs the keys whose period ended with items counted; call every turn.
  void Flush();

 private:
  struct Entry {
    std::chrono::steady_clock::time_point logged{};
    long long pending = 0;
    std::string reason;
  };
  void Log(const std::string& key, Entry& entry, long long count);

  const base::Clock& clock_;
  std::string what_, key_name_;
  std::unordered_map<std::string, Entry> entries_;
  std::chrono::steady_clock::time_point next_flush_{};
};

}  // namespace pgcourier::lanes

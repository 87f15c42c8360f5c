// Maintenance: the work one daemon at a time does for everyone, the holder
// of a session advisory lock on its main connection (it moves to another
// daemon when the holder's connection closes): lease rescue every
// rescue_interval, and a watch on the database's clock (a forward step
// pauses the rescue, a backward one moves the old clock's schedules back:
// WatchDatabaseClock); queue metrics, retention, connection probes and credential
// rotations every maintenance_interval (each lane's Maintain). Retention
// (each lane's Prune) runs at the same cadence on a thread of its own while
// this daemon leads (engine/retention.hpp).
// Rescue reads and decides on the main session, then hands the fenced
// outcomes to the writer like any result.
//
// Not synchronised: the engine's thread. Throws StoreError from the main
// session (the engine reconnects); the leadership goes with a lost connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "base/clock.hpp"
#include "config/settings.hpp"
#include "engine/clock_shift.hpp"
#include "lanes/lane.hpp"
#include "metrics/metrics.hpp"

namespace pgcourier::store {
class Session;
}

namespace pgcourier::engine {

class Writer;

class Maintenance {
 public:
  Maintenance(const config::Settings& settings, const base::Clock& clock, metrics::Metrics& metrics);

  // Called every turn while connected: tries for leadership every
  // rescue_interval, and as leader does what is due.
  void Tick(store::Session& main, const lanes::Stores& stores, const std::vector<lanes::Lane*>& lanes, Writer& writer);
  // The main session (re)connected. No lease is taken back for one
  // lease_duration plus the longest reconnect delay (Backoff: 5 s) after that:
  // the other daemons, whose connections come back within that, first write
  // the results they kept through the outage and renew their leases (so an
  // outage longer than a lease does not turn into duplicate deliveries).
  // The leadership is tried for at once (in the next Tick).
  void Connected() {
    rescue_not_before_ = clock_.Now() + settings_.lease_duration + kReconnectBound;
    next_rescue_ = clock_.Now();
  }
  static constexpr std::chrono::milliseconds kReconnectBound{5000};
  // A rescue job of `lane` came back from the writer: the lane may rescue again.
  void RescueWritten(const lanes::Lane* lane) { rescuing_.erase(lane); }
  // The main session was lost: so was the lock.
  void ConnectionLost();
  bool leader() const { return leader_; }
  // When Tick has something to do next.
  std::chrono::steady_clock::time_point next_due() const { return next_rescue_; }

 private:
  const config::Settings& settings_;
  const base::Clock& clock_;
  metrics::Metrics& metrics_;
  bool leader_ = false;
  std::set<const lanes::Lane*> rescuing_;  // a rescue job of the lane is with the writer
  std::chrono::steady_clock::time_point next_rescue_{};
  std::chrono::steady_clock::time_point next_maintenance_{};
  std::chrono::steady_clock::time_point rescue_not_before_{};
  // The database's clock minus the steady clock, at the last look: a change
  // is a step of the database's clock (leases and schedules are its time).
  std::optional<std::int64_t> clock_offset_us_;
  // What is left to move back after backward steps (kept across a lost
  // connection: the next turn as leader goes on; a new leader never saw the
  // step, and what is left waits the step out).
  ClockShift shift_;
  static constexpr int kShiftBatch = 1000;
  static constexpr int kShiftBatchesPerTurn = 10;  // bounded work per rescue turn; the rest waits for the next
  void WatchDatabaseClock(store::Session& main, std::chrono::steady_clock::time_point now, std::size_t lanes);
  void ShiftSchedules(const lanes::Stores& stores, const std::vector<lanes::Lane*>& lanes);
};

}  // namespace pgcourier::engine

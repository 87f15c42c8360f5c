// ClockShift: what the maintenance leader still has to move back after
// backward steps of the database clock. A step back of S leaves every due
// time and lease written before it S too late on the new clock (-1 h on the
// database clock delayed a backlog by 59 minutes); each step seen starts one
// pass over every lane, in bounded batches (shift_schedules.sql says which
// rows move and which never do), after the passes already begun. Pure
// bookkeeping: Maintenance runs the batches and reports what they did.
//
// Not synchronised: the engine's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>

#include "store/types.hpp"

namespace pgcourier::engine {

class ClockShift {
 public:
  using Millis = std::chrono::milliseconds;

  // What one lane's part of a pass moved (for the log line when it ends).
  struct LaneDone {
    std::size_t lane = 0;
    Millis step{0};
    long long due_times = 0;
    long long leases = 0;
  };

  ClockShift(int batch, Millis lease_margin) : batch_(batch), lease_margin_(lease_margin) {}

  // The database clock stepped back by `step`: a pass over lanes 0..lanes-1.
  void SteppedBack(Millis step, std::size_t lanes);
  bool pending() const { return !passes_.empty(); }
  // The lane and request of the next batch (pending() only).
  std::size_t lane() const { return passes_.front().lane; }
  store::ScheduleShift Next() const;
  // The batch from Next() came back. A lane's part ends with a batch that
  // visited fewer rows than asked (returned, for the log line); the pass
  // then goes on with the next lane, and ends after the last.
  std::optional<LaneDone> Done(const store::ShiftedSchedules& batch);

 private:
  struct Pass {
    Millis step;
    std::size_t lanes = 0;
    std::size_t lane = 0;
    store::ShiftedSchedules sum;  // of the lane in progress
    std::string after;
  };
  int batch_;
  Millis lease_margin_;
  std::deque<Pass> passes_;
};

}  // namespace pgcourier::engine

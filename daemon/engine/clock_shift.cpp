#include "engine/clock_shift.hpp"

namespace pgcourier::engine {

void ClockShift::SteppedBack(Millis step, std::size_t lanes) {
  // A later step gets a pass of its own: rows the first pass moved already
  // carry its correction, and the criteria (written after now()) see each
  // row as it is when its batch runs.
  if (lanes > 0 && step.count() > 0) passes_.push_back(Pass{step, lanes});
}

store::ScheduleShift ClockShift::Next() const {
  const Pass& p = passes_.front();
  return store::ScheduleShift{p.step, lease_margin_, p.after, batch_};
}

std::optional<ClockShift::LaneDone> ClockShift::Done(const store::ShiftedSchedules& batch) {
  Pass& p = passes_.front();
  p.sum.due_times += batch.due_times;
  p.sum.leases += batch.leases;
  if (batch.visited >= batch_ && !batch.last_id.empty()) {
    p.after = batch.last_id;
    return std::nullopt;
  }
  LaneDone done{p.lane, p.step, p.sum.due_times, p.sum.leases};
  p = Pass{p.step, p.lanes, p.lane + 1};
  if (p.lane >= p.lanes) passes_.pop_front();
  return done;
}

}  // namespace pgcourier::engine

#include "engine/clock_shift.hpp"

#include <doctest/doctest.h>

using pgcourier::engine::ClockShift;
using pgcourier::store::ShiftedSchedules;
using Millis = std::chrono::milliseconds;

namespace {

ShiftedSchedules Batch(const char* last_id, int visited, int due_times, int leases) {
  return ShiftedSchedules{last_id, visited, due_times, leases};
}

}  // namespace

TEST_CASE("clock shift: nothing to do until the clock steps back") {
  ClockShift shift(100, Millis(6000));
  CHECK_FALSE(shift.pending());
  shift.SteppedBack(Millis(0), 2);
  shift.SteppedBack(Millis(3600000), 0);
  CHECK_FALSE(shift.pending());
}

TEST_CASE("clock shift: one pass over every lane in batches, each lane from the start, each batch after the last id") {
  ClockShift shift(100, Millis(6000));
  shift.SteppedBack(Millis(3600000), 2);
  REQUIRE(shift.pending());
  CHECK(shift.lane() == 0);
  auto next = shift.Next();
  CHECK(next.step == Millis(3600000));
  CHECK(next.lease_margin == Millis(6000));
  CHECK(next.after.empty());
  CHECK(next.batch == 100);

  CHECK_FALSE(shift.Done(Batch("dlv_100", 100, 40, 3)));  // a full batch: more to visit
  CHECK(shift.lane() == 0);
  CHECK(shift.Next().after == "dlv_100");

  const auto lane0 = shift.Done(Batch("dlv_150", 50, 10, 1));  // short: the lane's part is over
  REQUIRE(lane0);
  CHECK(lane0->lane == 0);
  CHECK(lane0->step == Millis(3600000));
  CHECK(lane0->due_times == 50);
  CHECK(lane0->leases == 4);

  REQUIRE(shift.pending());
  CHECK(shift.lane() == 1);
  CHECK(shift.Next().after.empty());  // the next lane starts at its first row
  const auto lane1 = shift.Done(Batch("", 0, 0, 0));  // an empty table
  REQUIRE(lane1);
  CHECK(lane1->lane == 1);
  CHECK(lane1->due_times == 0);
  CHECK_FALSE(shift.pending());  // once: the pass is over
}

TEST_CASE("clock shift: a second step back while a pass runs gets a pass of its own, after the first") {
  ClockShift shift(10, Millis(6000));
  shift.SteppedBack(Millis(3600000), 1);
  CHECK_FALSE(shift.Done(Batch("dlv_10", 10, 10, 0)));
  shift.SteppedBack(Millis(60000), 1);
  CHECK(shift.Next().step == Millis(3600000));  // the first goes on where it was
  CHECK(shift.Next().after == "dlv_10");
  REQUIRE(shift.Done(Batch("dlv_12", 2, 2, 0)));
  REQUIRE(shift.pending());
  CHECK(shift.Next().step == Millis(60000));
  CHECK(shift.Next().after.empty());
  REQUIRE(shift.Done(Batch("dlv_12", 9, 1, 0)));
  CHECK_FALSE(shift.pending());
}

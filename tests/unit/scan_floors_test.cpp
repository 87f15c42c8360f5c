// Where a claim starts looking for first attempts (lanes/deliveries/scan_floors.hpp):
// one floor per subscription, the others' floor, and the full scan once a second.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "lanes/deliveries/scan_floors.hpp"

using pgcourier::base::ManualClock;
using pgcourier::lanes::deliveries::ScanFloors;
using pgcourier::store::DeliveryClaimRequest;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kSlackUs = 1'000'000;

std::int64_t FloorOf(const DeliveryClaimRequest& r, const std::string& subscription) {
  for (std::size_t i = 0; i < r.floor_subscriptions.size(); ++i) {
    if (r.floor_subscriptions[i] == subscription) return r.floor_due_us[i];
  }
  return -1;
}

}  // namespace

TEST_CASE("the first claim and one a second are full scans; the others start at the floors") {
  ManualClock clock;
  ScanFloors floors(clock);
  DeliveryClaimRequest first;
  CHECK(floors.Bound(first));
  CHECK(first.floor_subscriptions.empty());
  CHECK_FALSE(first.other_floor_us.has_value());
  CHECK_FALSE(floors.full_scan_due().has_value());  // nothing was bounded yet

  floors.Claimed({{"s1", 5'000'000}, {"s1", 3'000'000}, {"s2", 9'000'000}});
  clock.Advance(100ms);
  DeliveryClaimRequest next;
  CHECK_FALSE(floors.Bound(next));
  // The oldest row each subscription gave, less the slack.
  CHECK(FloorOf(next, "s1") == 3'000'000 - kSlackUs);
  CHECK(FloorOf(next, "s2") == 9'000'000 - kSlackUs);
  CHECK(next.floor_subscriptions.size() == next.floor_due_us.size());
  // Any other subscription starts at the lowest of them.
  REQUIRE(next.other_floor_us.has_value());
  CHECK(*next.other_floor_us == 3'000'000 - kSlackUs);
  // That bounded claim makes a full scan due a second after the last one.
  REQUIRE(floors.full_scan_due().has_value());
  CHECK(*floors.full_scan_due() == clock.Now() - 100ms + ScanFloors::kFullScanEvery);

  clock.Advance(ScanFloors::kFullScanEvery);
  DeliveryClaimRequest full;
  CHECK(floors.Bound(full));
  CHECK(full.floor_subscriptions.empty());
  CHECK_FALSE(full.other_floor_us.has_value());
  CHECK_FALSE(floors.full_scan_due().has_value());
}

TEST_CASE("a claim's rows replace a subscription's floor, even with older ones") {
  ManualClock clock;
  ScanFloors floors(clock);
  DeliveryClaimRequest r;
  floors.Bound(r);
  floors.Claimed({{"s1", 50'000'000}});
  floors.Claimed({{"s2", 70'000'000}});
  // A full scan found an old row the floor had hidden (committed late): the
  // next claims start from it, not from the newer floor.
  floors.Claimed({{"s1", 10'000'000}, {"s1", 60'000'000}});
  clock.Advance(10ms);
  DeliveryClaimRequest next;
  CHECK_FALSE(floors.Bound(next));
  CHECK(FloorOf(next, "s1") == 10'000'000 - kSlackUs);
  CHECK(FloorOf(next, "s2") == 70'000'000 - kSlackUs);  // untouched by a claim without its rows
  CHECK(floors.size() == 2);
}

TEST_CASE("floors not renewed for a minute are forgotten, and Reset forgets them all") {
  ManualClock clock;
  ScanFloors floors(clock);
  DeliveryClaimRequest r;
  floors.Bound(r);
  floors.Claimed({{"old", 1'000'000}});
  clock.Advance(ScanFloors::kForgetAfter - 1s);
  floors.Claimed({{"young", 2'000'000}});
  clock.Advance(2s);
  DeliveryClaimRequest full;
  CHECK(floors.Bound(full));  // more than a second since the last full scan
  clock.Advance(10ms);
  DeliveryClaimRequest next;
  CHECK_FALSE(floors.Bound(next));
  CHECK(FloorOf(next, "old") == -1);
  CHECK(FloorOf(next, "young") == 2'000'000 - kSlackUs);
  CHECK(*next.other_floor_us == 2'000'000 - kSlackUs);

  floors.Reset();
  DeliveryClaimRequest after;
  CHECK_FALSE(floors.Bound(after));
  CHECK(after.floor_subscriptions.empty());
  CHECK_FALSE(after.other_floor_us.has_value());  // no floor at all: the bounded claim looks everywhere
}

TEST_CASE("a slow full scan stretches the period of the next, up to 5 s, and a fast one shrinks it back") {
  ManualClock clock;
  ScanFloors floors(clock);
  DeliveryClaimRequest r;
  REQUIRE(floors.Bound(r));
  floors.FullScanTook(10ms);  // 20 x 10 ms is less than the 1 s minimum
  CHECK(floors.full_scan_every() == ScanFloors::kFullScanEvery);
  floors.Claimed({{"s1", 5'000'000}});

  floors.FullScanTook(150ms);  // 20 x 150 ms
  CHECK(floors.full_scan_every() == 3000ms);
  clock.Advance(2900ms);
  DeliveryClaimRequest bounded;
  CHECK_FALSE(floors.Bound(bounded));  // still inside the stretched period
  CHECK(FloorOf(bounded, "s1") == 5'000'000 - kSlackUs);
  REQUIRE(floors.full_scan_due().has_value());
  CHECK(*floors.full_scan_due() == clock.Now() - 2900ms + 3000ms);
  clock.Advance(100ms);
  DeliveryClaimRequest full;
  CHECK(floors.Bound(full));

  floors.FullScanTook(2s);  // capped: a late row waits at most 5 s longer
  CHECK(floors.full_scan_every() == ScanFloors::kFullScanEveryMax);
  floors.FullScanTook(20ms);
  CHECK(floors.full_scan_every() == ScanFloors::kFullScanEvery);
}

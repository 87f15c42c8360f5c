// Where a claim starts looking for a subscription's first attempts (issue 15:
// a snapshot held open must not make every claim slower by the minute).
//
// A claim takes a subscription's oldest due rows. The rows it took before
// stay in the claim's index as dead entries until VACUUM removes them, and
// VACUUM cannot while any transaction of the cluster holds an older snapshot
// (a long report, a pg_dump): at 5,000 deliveries/s, three minutes of that
// leave ~900,000 entries in front of the first live row, and a look from the
// start reads the heap behind every one. So the daemon remembers, per
// subscription, the due time of the oldest row its last claim of that
// subscription took (its floor), and the next claim starts at the floor
// minus kSlack: the index descends straight to it.
//
// A floor is a lower bound only for rows that were committed when it was
// taken. A row can still appear below it: a producer's transaction that
// began before the floor (due_at is its transaction time) and committed
// after, or a claim of another daemon that was rolled back. So one claim in
// every kFullScanEvery passes no floors at all and finds whatever they hid:
// such a row waits at most that much longer than it would have. The claim
// after a bounded one is never further away than that (full_scan_due).
// The full scan itself reads what the floors skip: under a held snapshot it
// grows with every minute of the hold (about 90 ms at the end of three
// minutes at 3,000 deliveries/s), so its period stretches to kFullScanShare
// times its last duration, up to kFullScanEveryMax: at most a twentieth of
// the claim path's time, and a late row waits at most 5 s longer.
//
// Per daemon, in memory: a floor that another daemon's claims have passed is
// only lower than it could be (the look reads a few more entries), never
// wrong. Time from the injected clock; the engine's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.hpp"
#include "store/types.hpp"

namespace pgcourier::lanes::deliveries {

class ScanFloors {
 public:
  static constexpr std::chrono::milliseconds kSlack{1000};
  static constexpr std::chrono::milliseconds kFullScanEvery{1000};
  static constexpr std::chrono::milliseconds kFullScanEveryMax{5000};
  static constexpr int kFullScanShare = 20;
  static constexpr std::chrono::seconds kForgetAfter{60};

  explicit ScanFloors(const base::Clock& clock) : clock_(clock) {}

  // The floors of the next claim, or none (a full scan, due once every
  // kFullScanEvery). Returns true for a full scan.
  bool Bound(store::DeliveryClaimRequest& request);
  // The first attempts that claim leased: (subscription, due time in unix
  // microseconds) per row. Retries are not passed: they are found by due
  // time, through another index.
  void Claimed(const std::vector<std::pair<std::string, std::int64_t>>& first_attempts);
  // When a full scan must run, if a bounded claim ran since the last one.
  std::optional<base::Clock::Steady> full_scan_due() const;
  // How long the last full scan's claim took: sets the period of the next.
  void FullScanTook(base::Clock::Steady::duration took);
  base::Clock::Steady::duration full_scan_every() const { return full_every_; }
  // Forget every floor (after the database clock stepped: due times moved).
  void Reset() { floors_.clear(); }

  std::size_t size() const { return floors_.size(); }

 private:
  struct Floor {
    std::int64_t due_us = 0;
    base::Clock::Steady taken{};
  };
  const base::Clock& clock_;
  std::unordered_map<std::string, Floor> floors_;  // by subscription id
  std::optional<base::Clock::Steady> last_full_;
  bool bounded_since_full_ = false;
  base::Clock::Steady::duration full_every_ = kFullScanEvery;
};

}  // namespace pgcourier::lanes::deliveries

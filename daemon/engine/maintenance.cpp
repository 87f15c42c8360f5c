#include "engine/maintenance.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/writer.hpp"
#include "store/session.hpp"

namespace pgcourier::engine {
namespace {

// One step of maintenance: a failed statement is logged and the next step
// runs; a lost connection ends the tick (the engine reconnects).
template <typename Fn>
void Step(const char* what, const char* lane, Fn&& fn) {
  try {
    fn();
  } catch (const store::StoreError& e) {
    if (e.kind() == store::StoreError::Kind::kConnectionLost) throw;
    spdlog::error("maintenance: {} ({}) failed: {}", what, lane, e.what());
  }
}

}  // namespace

Maintenance::Maintenance(const config::Settings& settings, const base::Clock& clock, metrics::Metrics& metrics)
    : settings_(settings),
      clock_(clock),
      metrics_(metrics),
      // Leases further away than two of ours can only be of the old clock
      // (shift_schedules.sql says why twice).
      shift_(kShiftBatch, settings.lease_duration * 2) {}

void Maintenance::ConnectionLost() {
  if (!leader_) return;
  leader_ = false;
  metrics_.Leader(false);
}

void Maintenance::WatchDatabaseClock(store::Session& main, std::chrono::steady_clock::time_point now,
                                     std::size_t lanes) {
  const std::int64_t db_us = main.DatabaseNowMicros();
  const std::int64_t steady_us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::int64_t offset = db_us - steady_us;
  if (clock_offset_us_) {
    const std::int64_t step_ms = (offset - *clock_offset_us_) / 1000;
    const std::int64_t bound_ms = std::max<std::int64_t>(2000, settings_.lease_duration.count() / 2);
    if (step_ms > bound_ms) {
      // Every live lease now looks expired: the daemons holding them renew
      // within a third of a lease, so none is taken back until then.
      spdlog::warn("the database clock jumped forward by {} ms: no lease is taken back for {} ms, so the daemons "
                   "renew the ones they hold; retries due within the jump are sent early",
                   step_ms, settings_.lease_duration.count());
      rescue_not_before_ = std::max(rescue_not_before_, now + settings_.lease_duration);
    } else if (step_ms < -bound_ms) {
      // Every due time and lease written before the step lies that much
      // later on the new clock: moved back, batch by batch from the next
      // turns on (rows written since the step are never moved:
      // shift_schedules.sql).
      spdlog::warn("the database clock jumped back by {} ms: moving the due times and leases written before the "
                   "jump back by as much (what is written from now on is left as it is)",
                   -step_ms);
      shift_.SteppedBack(std::chrono::milliseconds(-step_ms), lanes);
    }
  }
  clock_offset_us_ = offset;
}

void Maintenance::ShiftSchedules(const lanes::Stores& stores, const std::vector<lanes::Lane*>& lanes) {
  for (int i = 0; i < kShiftBatchesPerTurn && shift_.pending(); ++i) {
    lanes::Lane* lane = lanes.at(shift_.lane());
    bool done = false;
    Step("moving schedules back after the database clock's jump", lane->name(), [&] {
      const auto batch = lane->ShiftSchedules(stores, shift_.Next());
      metrics_.ClockShifted(lane->name(), batch.due_times, batch.leases);
      if (const auto finished = shift_.Done(batch)) {
        spdlog::warn("{}: moved back by {} ms (the database clock's jump back): {} due time(s) and {} lease(s) "
                     "written before it",
                     lane->name(), finished->step.count(), finished->due_times, finished->leases);
      }
      done = true;
    });
    if (!done) break;  // the same batch again at the next turn
  }
}

void Maintenance::Tick(store::Session& main, const lanes::Stores& stores, const std::vector<lanes::Lane*>& lanes,
                       Writer& writer) {
  const auto now = clock_.Now();
  if (now >= next_rescue_) {
    next_rescue_ = now + settings_.rescue_interval;
    if (!leader_) {
      leader_ = main.TryBecomeLeader();
      if (leader_) {
        spdlog::info("this daemon ({}) now runs maintenance: lease rescue, queue metrics, retention, probes",
                     settings_.worker_id);
        metrics_.Leader(true);
        next_maintenance_ = now;
      }
    }
    if (leader_) Step("watching the database clock", "all", [&] { WatchDatabaseClock(main, now, lanes.size()); });
    // Before the rescue: a dead daemon's lease of the old clock is then taken back on time.
    if (leader_ && shift_.pending()) ShiftSchedules(stores, lanes);
    if (leader_ && now >= rescue_not_before_) {
      for (auto* lane : lanes) {
        if (rescuing_.count(lane)) continue;  // the previous rescue is not written yet: it would find the same rows
        Step("rescuing expired leases", lane->name(), [&] {
          if (auto job = lane->Rescue(stores)) {
            rescuing_.insert(lane);
            writer.Submit(lane, std::move(job), /*turn=*/false);
          }
        });
      }
    }
  }
  if (leader_ && now >= next_maintenance_) {
    next_maintenance_ = now + settings_.maintenance_interval;
    for (auto* lane : lanes) {
      Step("refreshing metrics, probes and rotations", lane->name(), [&] { lane->Maintain(stores); });
    }
  }
}

}  // namespace pgcourier::engine

// What every lane does with its leases the same way: the heartbeat job that
// renews the leases of the work it holds, what a heartbeat reports back, and
// what a written rescue of a dead daemon's expired leases says. A lane names
// its kind of work; the store that renews follows from it. The jobs execute
// on the writer's thread; Report and ReportRescued run on the engine's.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "lanes/lane.hpp"
#include "metrics/metrics.hpp"

namespace pgcourier::lanes {

enum class LeasedWork { kDeliveries, kRuns };

class RenewLeases final : public WriteJob {
 public:
  RenewLeases(LeasedWork work, std::vector<std::string> ids, std::chrono::milliseconds lease)
      : work_(work), ids_(std::move(ids)), lease_(lease) {}
  std::size_t items() const override { return 0; }  // holds no result: never a reason to stop claiming
  void Execute(const Stores& writer, const std::string& worker) override;
  // After Execute: warns when some leases were no longer this daemon's (a
  // rescue took them back after they expired; their results will not count).
  void Report() const;

 private:
  LeasedWork work_;
  std::vector<std::string> ids_;
  std::chrono::milliseconds lease_;
  int renewed_ = 0;
};

// A rescue wrote `recovered` outcomes for leases that had expired (their
// daemon died or stalled): says so and counts them (nothing when 0).
void ReportRescued(metrics::Metrics& metrics, LeasedWork work, std::size_t recovered);

}  // namespace pgcourier::lanes

#include "lanes/leases.hpp"

#include <spdlog/spdlog.h>

namespace pgcourier::lanes {
namespace {

const char* Noun(LeasedWork work) { return work == LeasedWork::kDeliveries ? "delivery" : "run"; }

}  // namespace

void RenewLeases::Execute(const Stores& writer, const std::string& worker) {
  renewed_ = work_ == LeasedWork::kDeliveries ? writer.deliveries.RenewLeases(worker, ids_, lease_)
                                              : writer.runs.RenewLeases(worker, ids_, lease_);
}

void RenewLeases::Report() const {
  const auto renewed = static_cast<std::size_t>(renewed_);
  if (renewed >= ids_.size()) return;
  spdlog::warn(
      "heartbeat: {} of {} {} lease(s) were no longer this daemon's (taken back after they expired); their "
      "results will not be recorded",
      ids_.size() - renewed, ids_.size(), Noun(work_));
}

void ReportRescued(metrics::Metrics& metrics, LeasedWork work, std::size_t recovered) {
  if (recovered == 0) return;
  spdlog::warn("recovered {} {}(s) whose lease expired (their daemon died or stalled)", recovered, Noun(work));
  metrics.LeasesRecovered(static_cast<int>(recovered));
}

}  // namespace pgcourier::lanes

// The run lane's write job: what one turn (or one rescue) of the lane hands
// the engine's writer (the heartbeat of its leases is lanes/leases.hpp). It
// executes on the writer's thread and session; the lane fills it on the
// engine's thread and reads its results back there once written
// (lanes/lane.hpp: a job may execute more than once, so each part is
// written once only).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "lanes/lane.hpp"
#include "lanes/runs/decide.hpp"

namespace pgcourier::lanes::runs {

struct ProbeResult {
  std::string connection_id;
  bool ok = false;
  std::optional<int> status_code;
  std::string error;
  int unhealthy_after = 1;
};

struct RotationResult {
  std::string version_id;
  bool ok = false;
  std::string connection_id;
  std::string error;
};

// One turn's writes of the lane (or one rescue's). Parts already written are
// not written again when the writer retries the job.
class RunWrites final : public WriteJob {
 public:
  std::vector<model::RunOutcome> outcomes;
  std::vector<store::Release> releases;
  std::vector<Degrade> degrades;
  std::vector<ProbeResult> probes;
  std::vector<RotationResult> rotations;
  bool rescue = false;

  // After Execute.
  std::vector<std::string> applied;
  std::vector<bool> degraded;  // per degrade: whether it changed the connection
  std::vector<bool> finished;  // per rotation: whether it was still rotating

  std::size_t items() const override {
    return outcomes.size() + releases.size() + degrades.size() + probes.size() + rotations.size();
  }
  bool empty() const { return items() == 0; }

  void Execute(const Stores& writer, const std::string& worker) override;

 private:
  bool outcomes_written_ = false;
  bool releases_written_ = false;
  std::size_t probes_written_ = 0;
};

}  // namespace pgcourier::lanes::runs

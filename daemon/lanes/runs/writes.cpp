#include "lanes/runs/writes.hpp"

namespace pgcourier::lanes::runs {

void RunWrites::Execute(const Stores& writer, const std::string& worker) {
  // Degrades before outcomes: a refused credential's run goes back to pending and due at once (it
  // waits on its connection, not on a backoff), so the connection must already read degraded when
  // that outcome commits, or a claim in between sends the run again with the refused credential.
  while (degraded.size() < degrades.size()) {
    const auto& d = degrades[degraded.size()];
    degraded.push_back(writer.runs.DegradeConnection(d.connection_id, d.reason, d.credential_version));
  }
  if (!outcomes_written_) {
    applied = writer.runs.Record(worker, outcomes);
    outcomes_written_ = true;
  }
  if (!releases_written_) {
    writer.runs.Release(worker, releases);
    releases_written_ = true;
  }
  while (probes_written_ < probes.size()) {
    const auto& p = probes[probes_written_];
    writer.runs.RecordProbe(p.connection_id, p.ok, p.status_code, p.error, p.unhealthy_after);
    ++probes_written_;
  }
  while (finished.size() < rotations.size()) {
    const auto& r = rotations[finished.size()];
    finished.push_back(writer.runs.FinishRotation(r.version_id, r.ok, r.connection_id, r.error));
  }
}

}  // namespace pgcourier::lanes::runs

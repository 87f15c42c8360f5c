#include "engine/shutdown.hpp"

namespace pgcourier::engine {

Shutdown::Actions Shutdown::Step(Steady now, bool settled) {
  Actions actions;
  if (phase_ == Phase::kDone) {
    actions.done = true;
    return actions;
  }
  if (stop_requested_ && phase_ != Phase::kAborting) {
    phase_ = Phase::kAborting;
    deadline_ = now + abort_window_;
    actions.abort_all = true;
  }
  if (drain_requested_ && phase_ == Phase::kRunning) {
    phase_ = Phase::kDraining;
    deadline_ = now + grace_ - abort_window_;
    actions.drop_waiting = true;
  }
  if (phase_ == Phase::kDraining && now >= *deadline_) {
    phase_ = Phase::kAborting;
    deadline_ = now + abort_window_;
    actions.abort_all = true;
  }
  if (phase_ == Phase::kRunning) return actions;
  if (settled) {
    phase_ = Phase::kDone;
    actions.done = true;
  } else if (phase_ == Phase::kAborting && now >= *deadline_) {
    phase_ = Phase::kDone;
    actions.done = true;
    actions.unwritten = true;
  }
  return actions;
}

}  // namespace pgcourier::engine

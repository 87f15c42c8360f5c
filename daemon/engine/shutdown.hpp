// The drain/stop state machine of the engine, as a pure class: time and
// "settled" (nothing in flight, nothing unwritten) come in, actions come out.
//
//   running --Drain()--> draining: no new claims; requests not started yet
//                        go back unsent (drop waiting); those in flight may
//                        finish until the grace period less the abort window
//   draining --that is over--> aborting: every request is aborted and its
//                        lease released; the abort window (2 s, at most a
//                        quarter of the grace) to write that, so the whole
//                        stop ends within the grace period
//   running --Stop()--> aborting (a second SIGTERM)
//   draining/aborting --settled--> done (exit 0)
//   aborting --window over--> done, with results unwritten (the database is
//                        unreachable): their leases expire, another daemon retries
//
// Not synchronised: the engine's thread (Drain/Stop requests arrive through
// its atomics). Unit-tested with a manual clock in tests/unit/engine_test.cpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

namespace pgcourier::engine {

class Shutdown {
 public:
  using Steady = std::chrono::steady_clock::time_point;
  using Millis = std::chrono::milliseconds;
  enum class Phase { kRunning, kDraining, kAborting, kDone };

  struct Actions {
    bool drop_waiting = false;  // executor.DropWaiting(): requests not started go back unsent
    bool abort_all = false;     // executor.AbortAll() and lanes' StopSending()
    bool done = false;          // leave the loop
    bool unwritten = false;     // with done: results are left unwritten
  };

  Shutdown(Millis grace, Millis abort_window = Millis(2000))
      : grace_(grace), abort_window_(std::min(abort_window, grace / 4)) {}

  void RequestDrain() { drain_requested_ = true; }
  void RequestStop() { stop_requested_ = true; }

  // One step at `now`; `settled`: nothing in flight and nothing unwritten.
  Actions Step(Steady now, bool settled);

  Phase phase() const { return phase_; }
  bool claiming() const { return phase_ == Phase::kRunning; }
  // When the current phase ends by itself (for the poll timeout).
  std::optional<Steady> deadline() const { return deadline_; }

 private:
  Millis grace_, abort_window_;
  bool drain_requested_ = false;
  bool stop_requested_ = false;
  Phase phase_ = Phase::kRunning;
  std::optional<Steady> deadline_;
};

}  // namespace pgcourier::engine

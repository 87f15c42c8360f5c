// Lane: the only interface the engine (engine/engine.hpp) knows a kind of
// work by. Deliveries and integration runs are two lanes of one engine: the
// engine owns threads, connections, time, slots, the drain/stop state
// machine and the one writer; a lane owns one product's decisions and its
// in-memory state. Every lane has the same steps:
//
//   Claim(slots) on the engine's main session -> admit each item (pure:
//   item + policy + limits -> send / hold / release / fail) -> build its
//   request -> executor -> Complete(completion) (pure: result + policy ->
//   outcome) -> TakeWrites() -> the writer (its own thread and session)
//   -> Written(job) back on the engine's thread.
//
// A new kind of work is a new Lane, not new branches in the engine.
//
// Threading: every method is called on the engine's thread; WriteJob::Execute
// alone runs on the writer's thread, with the job handed over entirely.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "http/executor.hpp"
#include "store/deliveries_store.hpp"
#include "store/runs_store.hpp"

namespace pgcourier::lanes {

// The stores of one session: the engine's main session (claims, reads,
// maintenance) or the writer's (every write).
struct Stores {
  store::DeliveriesStore& deliveries;
  store::RunsStore& runs;
};

// One batch of a lane's results. The writer executes it on its own thread
// and session; a StoreError makes it retry the job after a backoff (100 ms
// doubling to 5 s), so a job is never dropped and never retried in a busy
// loop. Execute may therefore run more than once for one job: everything it
// writes is fenced (lease owner + attempt) or idempotent.
class WriteJob {
 public:
  virtual ~WriteJob() = default;
  // How many results it carries (the engine stops claiming while a whole
  // concurrency's worth waits unwritten).
  virtual std::size_t items() const = 0;
  virtual void Execute(const Stores& writer, const std::string& worker) = 0;
};

// A lane's accumulated writes as one job for the writer, leaving `next`
// empty for the next turn; null when there is nothing to write.
template <typename Job>
std::unique_ptr<WriteJob> TakeJob(Job& next) {
  if (next.empty()) return nullptr;
  auto job = std::make_unique<Job>(std::move(next));
  next = Job{};
  return job;
}

struct ClaimResult {
  int claimed = 0;
  bool full = false;  // the claim filled its limit: more is probably due
};

class Lane {
 public:
  virtual ~Lane() = default;

  virtual const char* name() const = 0;  // "deliveries", "runs": for logs
  // The NOTIFY channel that says new work is there ("courier_deliveries").
  virtual const char* channel() const = 0;

  // --- claiming ---------------------------------------------------------
  // A NOTIFY on the lane's channel arrived, or the engine (re)connected.
  virtual void Notified() = 0;
  // Whether the lane wants to claim now: notified, its own retries due, a
  // backlog, or `poll_due` (the engine's jittered poll timer fired).
  virtual bool WantsClaim(std::chrono::steady_clock::time_point now, bool poll_due) const = 0;
  // Claims at most `slots` items on the main session and starts the ones
  // that may start now. StoreError propagates (the engine reconnects).
  virtual ClaimResult Claim(const Stores& main, int slots) = 0;
  // The last claim filled its limit.
  virtual bool backlog() const = 0;
  // When the lane wants to claim without a notification (its own retries
  // falling due), or nothing.
  virtual std::optional<std::chrono::steady_clock::time_point> NextWake() const = 0;

  // --- executing ----------------------------------------------------------
  // Takes a completion of one of its requests; false when the token is not its own.
  virtual bool Complete(http::Completion& completion) = 0;
  // Executor slots it holds (requests in flight, items waiting for a token).
  virtual int busy() const = 0;
  // After the executor was told to abort: nothing new is sent, what would
  // start later is released instead.
  virtual void StopSending() = 0;

  // --- writing ------------------------------------------------------------
  // Its results since the last call, as one job, or nullptr. The engine asks
  // only while none of the lane's jobs is being written, so results made
  // during a write form the next batch.
  virtual std::unique_ptr<WriteJob> TakeWrites() = 0;
  // Results waiting for TakeWrites (not yet handed to the writer).
  virtual std::size_t unwritten() const = 0;
  // A job of this lane (from TakeWrites or Rescue) was written.
  virtual void Written(std::unique_ptr<WriteJob> job) = 0;

  // The heartbeat: a job renewing the leases of everything the lane holds
  // (requests in flight, items waiting for a token), or nullptr. The engine
  // asks every third of lease_duration; a job that fails is retried like any
  // other write, and the leases have the remaining two thirds to spare.
  virtual std::unique_ptr<WriteJob> Heartbeat() = 0;

  // --- maintenance (the leader only) --------------------------------------
  // Reads expired leases on the main session and decides (pure) what each
  // becomes; the job writes that, fenced by the dead owner and attempt.
  virtual std::unique_ptr<WriteJob> Rescue(const Stores& main) = 0;
  // Queue metrics, probes, rotations: what the lane does at the maintenance cadence.
  virtual void Maintain(const Stores& main) = 0;
  // Retention; returns how many finished items were removed. Called on the
  // retention thread with its own stores (engine/retention.hpp), so it reads
  // no lane state: only the settings, the metrics and the log, which are
  // thread-safe.
  virtual int Prune(const Stores& retention) const = 0;
  // Held items made due again (after a reload or restart); returns how many.
  virtual int WakeHeld(const Stores& main) = 0;
  // One batch of the pass that moves the lane's due times and leases of the
  // old clock back after a backward step of the database clock
  // (engine/clock_shift.hpp), on the main session.
  virtual store::ShiftedSchedules ShiftSchedules(const Stores& main, const store::ScheduleShift& shift) = 0;
};

}  // namespace pgcourier::lanes

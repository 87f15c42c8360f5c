// Writer: every result of every lane is written here, on the writer's own
// thread and database session, while the engine claims and dispatches on
// its main session. Jobs (lanes::WriteJob) come in from the engine's thread
// and go back to it once written, through an eventfd its poll loop watches.
//
// One retry policy for every write: a job whose Execute throws StoreError
// (the database is unreachable, or a statement failed) waits out a backoff
// (engine/backoff.hpp: 100 ms doubling to 5 s, its own per job), while the
// jobs behind it go ahead; a lost session is reconnected before the next
// try. A job is never dropped and never retried in a busy loop.
//
// Threading: Submit, TakeDone, pending_items and done_fd are for the
// engine's thread; the writer thread only sees a job between Submit and
// its return through TakeDone.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.hpp"
#include "engine/backoff.hpp"
#include "lanes/lane.hpp"
#include "store/session.hpp"
#include "store/types.hpp"

namespace pgcourier::engine {

struct WriterOptions {
  store::SessionOptions session;  // its watchdog, once interrupted, also stops reconnects
  std::string worker_id;
  std::string delivery_events;  // all, failures, none (store::NewDeliveriesStore)
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{5000};
};

// A job handed back once written.
struct WrittenJob {
  lanes::Lane* lane = nullptr;
  std::unique_ptr<lanes::WriteJob> job;
  bool turn = false;  // from the lane's TakeWrites (not a rescue)
};

class Writer {
 public:
  explicit Writer(WriterOptions options);
  ~Writer();  // Stop()s
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void Start();
  // Joins the thread after the statement in progress, if any; jobs not
  // written by then stay unwritten (their leases expire; another daemon retries).
  void Stop();

  void Submit(lanes::Lane* lane, std::unique_ptr<lanes::WriteJob> job, bool turn);
  std::vector<WrittenJob> TakeDone();
  // Readable while written jobs wait for TakeDone.
  int done_fd() const { return done_.fd(); }
  // Results submitted and not yet handed back (engine thread).
  std::size_t pending_items() const { return pending_items_; }
  std::size_t pending_jobs() const { return pending_jobs_; }
  // Whether the last attempt to reach the database failed (for readiness).
  bool unreachable() const;

 private:
  struct Queued {
    WrittenJob written;
    std::chrono::steady_clock::time_point not_before{};
    Backoff backoff;
  };
  void Run();

  WriterOptions options_;
  base::EventFd done_;
  std::size_t pending_items_ = 0;  // engine thread only
  std::size_t pending_jobs_ = 0;   // engine thread only

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;                  // guarded by mu_
  bool unreachable_ = false;           // guarded by mu_
  std::deque<Queued> queue_;           // guarded by mu_
  std::vector<WrittenJob> done_jobs_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace pgcourier::engine

// OutcomeWriter: records delivery outcomes on its own thread and its own
// database connection. The dispatcher hands it one batch at a time and goes
// on: its next claim runs on the main connection while the batch's
// transaction executes and commits, instead of after it. With one connection
// the two waited for each other every loop turn (bench/run drain: the
// backend idle a third of the time, the dispatcher waiting on it).
//
// Thread-safety: every method is for the dispatcher thread; the writer
// thread only sees a batch between Write() and the result it hands back.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model/delivery.hpp"
#include "store/store.hpp"

namespace pgcourier::dispatch {

struct OutcomeWriterOptions {
  std::string database_url;
  std::string worker_id;
  std::string delivery_events;  // all, failures, none (Store::SetDeliveryEvents)
  store::StatementObserver observer;
  // After a failed write (no connection, a failing statement) the next one
  // waits this long, doubling up to retry_max.
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{5000};
};

struct WriteResult {
  std::vector<model::DeliveryOutcome> outcomes;  // the batch, handed back
  bool written = false;
  std::vector<std::string> applied;              // ids whose outcome applied (Store::RecordOutcomes)
  std::vector<store::SubscriptionHealth> health;
  bool connection_lost = false;                  // when !written: the database was unreachable
  std::string error;                             // when !written
};

class OutcomeWriter {
 public:
  explicit OutcomeWriter(OutcomeWriterOptions options);
  ~OutcomeWriter();  // Stop()s
  OutcomeWriter(const OutcomeWriter&) = delete;
  OutcomeWriter& operator=(const OutcomeWriter&) = delete;

  void Start();
  // Joins the thread after the statement in progress, if any; a batch not
  // written by then stays unwritten (its leases expire, another daemon retries).
  void Stop();

  // A batch is being written (from Write until its result is taken).
  bool busy() const { return busy_; }
  // Starts writing `batch` (not empty); only when !busy().
  void Write(std::vector<model::DeliveryOutcome> batch);
  // The finished batch's result, once; nullopt while it is being written.
  std::optional<WriteResult> TakeResult();
  // Readable when a result is waiting (for the dispatcher's poll).
  int result_fd() const { return event_fd_; }

 private:
  void Run();
  WriteResult WriteBatch(std::vector<model::DeliveryOutcome> batch, std::unique_lock<std::mutex>& lock);

  OutcomeWriterOptions options_;
  int event_fd_ = -1;
  bool busy_ = false;  // dispatcher thread only

  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;                                        // guarded by mu_
  std::optional<std::vector<model::DeliveryOutcome>> job_;  // guarded by mu_
  std::optional<WriteResult> result_;                        // guarded by mu_
  std::thread thread_;

  // Writer thread only.
  std::unique_ptr<store::Store> store_;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds retry_delay_;
};

}  // namespace pgcourier::dispatch

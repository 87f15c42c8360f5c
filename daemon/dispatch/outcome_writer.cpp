#include "dispatch/outcome_writer.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <system_error>

namespace pgcourier::dispatch {

OutcomeWriter::OutcomeWriter(OutcomeWriterOptions options)
    : options_(std::move(options)), retry_delay_(options_.retry_min) {
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::generic_category().message(errno));
}

OutcomeWriter::~OutcomeWriter() {
  Stop();
  close(event_fd_);
}

void OutcomeWriter::Start() {
  thread_ = std::thread([this] { Run(); });
}

void OutcomeWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OutcomeWriter::Write(std::vector<model::DeliveryOutcome> batch) {
  busy_ = true;
  {
    std::lock_guard lock(mu_);
    job_ = std::move(batch);
  }
  wake_.notify_all();
}

std::optional<WriteResult> OutcomeWriter::TakeResult() {
  std::uint64_t drained = 0;
  (void)!read(event_fd_, &drained, sizeof drained);  // EAGAIN when nothing was signalled
  std::optional<WriteResult> out;
  {
    std::lock_guard lock(mu_);
    out.swap(result_);
  }
  if (out) busy_ = false;
  return out;
}

void OutcomeWriter::Run() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || job_.has_value(); });
    if (stop_) return;
    std::vector<model::DeliveryOutcome> batch = std::move(*job_);
    job_.reset();
    WriteResult result = WriteBatch(std::move(batch), lock);
    if (stop_) return;
    result_ = std::move(result);
    const std::uint64_t one = 1;
    (void)!write(event_fd_, &one, sizeof one);
  }
}

// Called and returns with `lock` held; the database work runs without it.
WriteResult OutcomeWriter::WriteBatch(std::vector<model::DeliveryOutcome> batch, std::unique_lock<std::mutex>& lock) {
  WriteResult result;
  // After a failed attempt, the next one waits out its delay (Stop interrupts
  // the wait): an unreachable database or a failing statement is not retried
  // in a busy loop.
  if (wake_.wait_until(lock, next_attempt_, [&] { return stop_; })) {
    result.outcomes = std::move(batch);
    result.error = "stopping";
    return result;
  }
  lock.unlock();
  try {
    if (!store_) {
      auto fresh = std::make_unique<store::Store>(options_.database_url, options_.observer);
      fresh->SetDeliveryEvents(options_.delivery_events);
      store_ = std::move(fresh);
    }
    result.applied = store_->RecordOutcomes(options_.worker_id, batch, &result.health);
    result.written = true;
    retry_delay_ = options_.retry_min;
  } catch (const store::StoreError& e) {
    result.error = e.what();
    if (e.kind() == store::StoreError::Kind::kConnectionLost) {
      result.connection_lost = true;
      store_.reset();
    }
  } catch (const std::exception& e) {  // not the database's doing (out of memory...): the batch is kept
    result.error = e.what();
  }
  if (!result.written) {
    next_attempt_ = std::chrono::steady_clock::now() + retry_delay_;
    retry_delay_ = std::min(options_.retry_max, retry_delay_ * 2);
  }
  result.outcomes = std::move(batch);
  lock.lock();
  return result;
}

}  // namespace pgcourier::dispatch

#include "engine/writer.hpp"

#include <spdlog/spdlog.h>

#include "store/deliveries_store.hpp"
#include "store/runs_store.hpp"
#include "store/session.hpp"
#include "store/watchdog.hpp"

namespace pgcourier::engine {
namespace {

const char* LaneName(const WrittenJob& w) { return w.lane ? w.lane->name() : "lane"; }

}  // namespace

Writer::Writer(WriterOptions options) : options_(std::move(options)) {}

Writer::~Writer() { Stop(); }

void Writer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Writer::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Writer::Submit(lanes::Lane* lane, std::unique_ptr<lanes::WriteJob> job, bool turn) {
  pending_items_ += job->items();
  ++pending_jobs_;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Queued{WrittenJob{lane, std::move(job), turn}, {},
                            Backoff(options_.retry_min, options_.retry_max)});
  }
  wake_.notify_one();
}

std::vector<WrittenJob> Writer::TakeDone() {
  done_.Drain();
  std::vector<WrittenJob> out;
  {
    std::lock_guard lock(mu_);
    out.swap(done_jobs_);
  }
  for (const auto& w : out) {
    pending_items_ -= w.job->items();
    --pending_jobs_;
  }
  return out;
}

bool Writer::unreachable() const {
  std::lock_guard lock(mu_);
  return unreachable_;
}

void Writer::Run() {
  std::unique_ptr<store::Session> session;
  std::unique_ptr<store::DeliveriesStore> deliveries;
  std::unique_ptr<store::RunsStore> runs;
  std::unique_lock lock(mu_);
  while (true) {
    // The first job whose backoff has passed; otherwise wait for the
    // earliest one, a new job, or Stop.
    auto ready = queue_.end();
    auto earliest = std::chrono::steady_clock::time_point::max();
    const auto now = std::chrono::steady_clock::now();
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->not_before <= now) {
        ready = it;
        break;
      }
      earliest = std::min(earliest, it->not_before);
    }
    if (stop_) return;
    if (ready == queue_.end()) {
      if (queue_.empty()) {
        wake_.wait(lock);
      } else {
        wake_.wait_until(lock, earliest);
      }
      continue;
    }
    Queued item = std::move(*ready);
    queue_.erase(ready);
    lock.unlock();
    bool written = false;
    try {
      if (!session) {
        if (options_.session.watchdog && options_.session.watchdog->interrupted()) {
          throw store::StoreError(store::StoreError::Kind::kConnectionLost, "the daemon is stopping");
        }
        session = std::make_unique<store::Session>(options_.session);
        deliveries = store::NewDeliveriesStore(*session, options_.delivery_events);
        runs = store::NewRunsStore(*session);
      }
      item.written.job->Execute(lanes::Stores{*deliveries, *runs}, options_.worker_id);
      written = true;
    } catch (const store::StoreError& e) {
      const auto delay = item.backoff.Next();
      if (e.kind() == store::StoreError::Kind::kConnectionLost || !session) {
        runs.reset();
        deliveries.reset();
        session.reset();
        spdlog::error("writer: database unreachable ({}); {} {} result(s) kept in memory, trying again in {} ms",
                      e.what(), item.written.job->items(), LaneName(item.written), delay.count());
      } else {
        spdlog::error("writer: writing {} {} result(s) failed: {}; trying again in {} ms", item.written.job->items(),
                      LaneName(item.written), e.what(), delay.count());
      }
      item.not_before = std::chrono::steady_clock::now() + delay;
    }
    lock.lock();
    unreachable_ = !session;
    if (written) {
      done_jobs_.push_back(std::move(item.written));
      done_.Signal();
    } else {
      queue_.push_back(std::move(item));  // the jobs behind it go first
    }
  }
}

}  // namespace pgcourier::engine

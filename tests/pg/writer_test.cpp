// engine::Writer: every lane's results written on its own thread and
// session; jobs handed back through an eventfd; an unreachable database
// keeps the job, and the next attempt waits out its backoff.
#include <poll.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "engine/writer.hpp"
#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::engine::Writer;
using pgcourier::engine::WriterOptions;
using pgcourier::engine::WrittenJob;
using pgcourier::model::DeliveryOutcome;
using pgcourier::model::DeliveryStatus;
using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::DaemonSession;
using pgtest::NewDelivery;
using pgtest::TestDb;

DeliveryOutcome Delivered(const std::string& id) {
  DeliveryOutcome o;
  o.delivery_id = id;
  o.attempt = 1;
  o.next_status = DeliveryStatus::kDelivered;
  o.outcome = "delivered";
  o.status_code = 200;
  o.started_us = 1700000000000000;
  return o;
}

// A job that records delivery outcomes, counting its executions and when they started.
class RecordJob final : public pgcourier::lanes::WriteJob {
 public:
  explicit RecordJob(std::vector<DeliveryOutcome> outcomes) : outcomes_(std::move(outcomes)) {}
  std::size_t items() const override { return outcomes_.size(); }
  void Execute(const pgcourier::lanes::Stores& writer, const std::string& worker) override {
    tries.push_back(std::chrono::steady_clock::now());
    applied = writer.deliveries.Record(worker, outcomes_).applied;
  }
  std::vector<std::chrono::steady_clock::time_point> tries;
  std::vector<std::string> applied;

 private:
  std::vector<DeliveryOutcome> outcomes_;
};

// Waits (up to 20 s) for a written job through the eventfd, as the engine does.
std::vector<WrittenJob> AwaitDone(Writer& writer) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{writer.done_fd(), POLLIN, 0};
    poll(&p, 1, 100);
    auto done = writer.TakeDone();
    if (!done.empty()) return done;
  }
  FAIL("no job back from the writer within 20 s");
  return {};
}

WriterOptions Options(const std::string& url) {
  WriterOptions o;
  o.session.database_url = url;
  o.worker_id = "worker-1";
  o.delivery_events = "all";
  o.retry_min = 300ms;
  return o;
}

}  // namespace

TEST_CASE("the writer records a job on its own session and hands it back with what applied") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto a = NewDelivery(conn, "acme", sub);
  const auto b = NewDelivery(conn, "acme", sub);
  DaemonSession claimer(db.url());
  REQUIRE(claimer.Claim("worker-1", 10, 60s).size() == 2);

  Writer writer(Options(db.url()));
  writer.Start();
  writer.Submit(nullptr, std::make_unique<RecordJob>(std::vector<DeliveryOutcome>{Delivered(a), Delivered(b)}), true);
  CHECK(writer.pending_items() == 2);
  auto done = AwaitDone(writer);
  REQUIRE(done.size() == 1);
  CHECK(done[0].turn);
  CHECK(writer.pending_items() == 0);
  CHECK(writer.pending_jobs() == 0);
  const auto& job = static_cast<RecordJob&>(*done[0].job);
  CHECK(job.tries.size() == 1);
  CHECK(job.applied.size() == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'") == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts WHERE worker = 'worker-1'") == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type = 'WebhookDelivered'") == 2);

  // The same outcomes again (a retry after a commit in doubt) change nothing.
  writer.Submit(nullptr, std::make_unique<RecordJob>(std::vector<DeliveryOutcome>{Delivered(a)}), true);
  done = AwaitDone(writer);
  CHECK(static_cast<RecordJob&>(*done[0].job).applied.empty());
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts") == 2);
}

TEST_CASE("an unreachable database keeps the job, retried after a backoff, never dropped") {
  // A port with nothing listening: connecting fails at once.
  Writer writer(Options("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"));
  writer.Start();
  auto job = std::make_unique<RecordJob>(std::vector<DeliveryOutcome>{Delivered("dlv_1")});
  writer.Submit(nullptr, std::move(job), true);
  std::this_thread::sleep_for(1200ms);
  CHECK(writer.TakeDone().empty());  // not written, not handed back as if it were
  CHECK(writer.pending_items() == 1);
  CHECK(writer.unreachable());
}

TEST_CASE("the writer retries a job against a database that comes back, waiting out its backoff between tries") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto a = NewDelivery(conn, "acme", sub);
  DaemonSession claimer(db.url());
  REQUIRE(claimer.Claim("worker-1", 10, 60s).size() == 1);
  // The job's first two executions fail as if the statement failed; then it is written.
  class Flaky final : public pgcourier::lanes::WriteJob {
   public:
    explicit Flaky(std::string id) : id_(std::move(id)) {}
    std::size_t items() const override { return 1; }
    void Execute(const pgcourier::lanes::Stores& writer, const std::string& worker) override {
      tries.push_back(std::chrono::steady_clock::now());
      if (tries.size() < 3) {
        throw pgcourier::store::StoreError(pgcourier::store::StoreError::Kind::kStatement, "injected failure");
      }
      applied = writer.deliveries.Record(worker, {Delivered(id_)}).applied;
    }
    std::vector<std::chrono::steady_clock::time_point> tries;
    std::vector<std::string> applied;

   private:
    std::string id_;
  };
  Writer writer(Options(db.url()));
  writer.Start();
  writer.Submit(nullptr, std::make_unique<Flaky>(a), true);
  auto done = AwaitDone(writer);
  const auto& job = static_cast<Flaky&>(*done[0].job);
  REQUIRE(job.tries.size() == 3);
  CHECK(job.applied.size() == 1);
  // 300 ms, then 600 ms: not a busy loop.
  CHECK(job.tries[1] - job.tries[0] >= 300ms);
  CHECK(job.tries[2] - job.tries[1] >= 600ms);
}

TEST_CASE("stopping the writer while a job waits out its backoff does not wait for the delay") {
  auto options = Options("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2");
  options.retry_min = 60s;
  Writer writer(options);
  writer.Start();
  writer.Submit(nullptr, std::make_unique<RecordJob>(std::vector<DeliveryOutcome>{Delivered("dlv_1")}), true);
  std::this_thread::sleep_for(300ms);  // the first try fails; the next waits 60 s
  const auto stopping = std::chrono::steady_clock::now();
  writer.Stop();
  CHECK(std::chrono::steady_clock::now() - stopping < 30s);
}

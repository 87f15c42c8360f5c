// OutcomeWriter: outcomes written on its own thread and connection; results
// handed back through an eventfd; an unreachable database gives the batch
// back and the next attempt waits out the retry delay.
#include <poll.h>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "dispatch/outcome_writer.hpp"
#include "store/store.hpp"
#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::dispatch::OutcomeWriter;
using pgcourier::dispatch::OutcomeWriterOptions;
using pgcourier::dispatch::WriteResult;
using pgcourier::model::DeliveryOutcome;
using pgcourier::model::DeliveryStatus;
using pgcourier::store::Store;
using pgtest::AddSubscription;
using pgtest::Count;
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

// Waits (up to 20 s) for the writer's result through its eventfd, as the dispatcher does.
WriteResult AwaitResult(OutcomeWriter& writer) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{writer.result_fd(), POLLIN, 0};
    poll(&p, 1, 100);
    if (auto r = writer.TakeResult()) return std::move(*r);
  }
  FAIL("no result from the outcome writer within 20 s");
  return {};
}

OutcomeWriterOptions Options(const std::string& url) {
  OutcomeWriterOptions o;
  o.database_url = url;
  o.worker_id = "worker-1";
  o.delivery_events = "all";
  o.retry_min = 300ms;
  return o;
}

}  // namespace

TEST_CASE("the outcome writer records a batch on its own connection and hands back what applied") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto a = NewDelivery(conn, "acme", sub);
  const auto b = NewDelivery(conn, "acme", sub);
  Store claimer(db.url());
  REQUIRE(claimer.ClaimDue("worker-1", 10, 60s).size() == 2);

  OutcomeWriter writer(Options(db.url()));
  writer.Start();
  CHECK_FALSE(writer.busy());
  writer.Write({Delivered(a), Delivered(b)});
  CHECK(writer.busy());
  const auto r = AwaitResult(writer);
  CHECK_FALSE(writer.busy());
  CHECK(r.written);
  CHECK(r.error.empty());
  CHECK(r.applied.size() == 2);
  CHECK(r.outcomes.size() == 2);  // the batch comes back for the dispatcher's bookkeeping
  CHECK(Count(conn, "SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'") == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts WHERE worker = 'worker-1'") == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type = 'WebhookDelivered'") == 2);

  // The same outcomes again (a retry after a commit in doubt) change nothing.
  writer.Write({Delivered(a)});
  const auto again = AwaitResult(writer);
  CHECK(again.written);
  CHECK(again.applied.empty());
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_attempts") == 2);
}

TEST_CASE("an unreachable database gives the batch back, and the next attempt waits out the retry delay") {
  // A port with nothing listening: connecting fails at once.
  OutcomeWriter writer(Options("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"));
  writer.Start();
  writer.Write({Delivered("dlv_1"), Delivered("dlv_2")});
  const auto first = AwaitResult(writer);
  CHECK_FALSE(first.written);
  CHECK(first.connection_lost);
  CHECK_FALSE(first.error.empty());
  REQUIRE(first.outcomes.size() == 2);
  CHECK(first.outcomes[0].delivery_id == "dlv_1");

  const auto resubmitted = std::chrono::steady_clock::now();
  writer.Write(first.outcomes);
  const auto second = AwaitResult(writer);
  CHECK_FALSE(second.written);
  CHECK(second.connection_lost);
  // Not retried in a busy loop: at least the 300 ms delay passed.
  CHECK(std::chrono::steady_clock::now() - resubmitted >= 300ms);
}

TEST_CASE("stopping the writer while it waits to retry does not wait for the delay") {
  auto options = Options("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2");
  options.retry_min = 60s;
  OutcomeWriter writer(options);
  writer.Start();
  writer.Write({Delivered("dlv_1")});
  REQUIRE_FALSE(AwaitResult(writer).written);
  writer.Write({Delivered("dlv_1")});  // waits 60 s before trying again
  const auto stopping = std::chrono::steady_clock::now();
  writer.Stop();
  CHECK(std::chrono::steady_clock::now() - stopping < 30s);
}

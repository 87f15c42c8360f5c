// NOTIFY on channel courier_deliveries, seen through Session::Listen.
#include <doctest/doctest.h>

#include <poll.h>

#include <chrono>
#include <string>

#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using pgtest::DaemonSession;
using pgtest::AddSubscription;
using pgtest::Publish;
using pgtest::TestDb;

// Sums the notifications `store` receives: until the first one arrives (or
// `first_within` passes), then for `settle` more.
int Take(DaemonSession& store) {
  int total = 0;
  for (const auto& n : store.session.TakeNotifications()) total += n.count;
  return total;
}

int CollectNotifications(DaemonSession& store, std::chrono::milliseconds first_within, std::chrono::milliseconds settle) {
  int total = Take(store);
  auto deadline = Clock::now() + first_within;
  bool settling = total > 0;
  if (settling) deadline = Clock::now() + settle;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd fd{store.session.socket(), POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
    REQUIRE(ready >= 0);
    if (ready > 0) total += Take(store);
    if (total > 0 && !settling) {
      settling = true;
      deadline = Clock::now() + settle;
    }
  }
  return total;
}

}  // namespace

TEST_CASE("a listener is notified on courier_deliveries when a publish commits") {
  TestDb db;
  pqxx::connection producer(db.url());
  AddSubscription(producer, "acme", {"*"});
  DaemonSession listener(db.url());
  listener.session.Listen({"courier_deliveries"});
  CHECK(CollectNotifications(listener, 0ms, 0ms) == 0);

  Publish(producer, "acme", "order.created");
  CHECK(CollectNotifications(listener, 5000ms, 50ms) >= 1);
}

TEST_CASE("a rolled-back publish notifies nobody") {
  TestDb db;
  pqxx::connection producer(db.url());
  AddSubscription(producer, "acme", {"*"});
  DaemonSession listener(db.url());
  listener.session.Listen({"courier_deliveries"});

  {
    pqxx::work txn(producer);
    txn.exec("SELECT courier.publish('acme', 'order.created', '{}'::jsonb)");
    txn.abort();
  }
  CHECK(CollectNotifications(listener, 300ms, 0ms) == 0);

  // A committed publish afterwards: its single notification (one per
  // transaction) is all the listener gets; one from the rolled-back
  // transaction would have been queued ahead of it.
  Publish(producer, "acme", "order.created");
  CHECK(CollectNotifications(listener, 5000ms, 100ms) == 1);
}

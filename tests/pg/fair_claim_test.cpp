// claim_due's fair shares (issue 15): round robin over subscriptions, the
// per-endpoint windows and exclusions the daemon passes, first attempts
// beside a storm of retries, and the byte budget.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::model::ClaimedDelivery;
using pgcourier::store::DeliveryClaimRequest;
using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::DaemonSession;
using pgtest::Exec;
using pgtest::NewDelivery;
using pgtest::TestDb;

DeliveryClaimRequest Request(int limit) {
  DeliveryClaimRequest r;
  r.claim = {"worker-1", limit, 60s, {}};
  r.max_bytes = std::int64_t{1} << 40;
  r.max_first_bytes = r.max_bytes;
  r.default_slots = limit;
  return r;
}

std::map<std::string, int> PerSubscription(const std::vector<ClaimedDelivery>& claimed) {
  std::map<std::string, int> out;
  for (const auto& d : claimed) ++out[d.subscription_id];
  return out;
}

}  // namespace

TEST_CASE("a subscription's backlog does not keep another subscription's new event waiting") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto busy = AddSubscription(conn, "acme", {"busy.*"});
  const auto quiet = AddSubscription(conn, "globex", {"quiet.*"});
  // busy's fifty rows are all older than quiet's one.
  for (int i = 0; i < 50; ++i) NewDelivery(conn, "acme", busy, "busy.e");
  const auto fresh = NewDelivery(conn, "globex", quiet, "quiet.e");
  DaemonSession d(db.url());
  auto r = Request(256);
  r.default_slots = 8;  // what the daemon passes with concurrency 256
  const auto claimed = d.deliveries->Claim(r);
  CHECK(PerSubscription(claimed.rows) == std::map<std::string, int>{{busy, 8}, {quiet, 1}});
  // It says it left due rows behind (busy's, over its window): the daemon claims again at once.
  CHECK(claimed.candidates == 9);
  CHECK(claimed.rows.size() == 9);
  bool found = false;
  for (const auto& c : claimed.rows) found = found || c.id == fresh;
  CHECK(found);
}

TEST_CASE("the subscriptions with work are visited in turn, from where the previous claim stopped") {
  TestDb db;
  pqxx::connection conn(db.url());
  std::vector<std::string> subs;
  for (const char* type : {"a.*", "b.*", "c.*"}) subs.push_back(AddSubscription(conn, "acme", {type}));
  for (int i = 0; i < 4; ++i) {
    NewDelivery(conn, "acme", subs[0], "a.e");
    NewDelivery(conn, "acme", subs[1], "b.e");
    NewDelivery(conn, "acme", subs[2], "c.e");
  }
  std::sort(subs.begin(), subs.end());  // the visit goes in id order
  DaemonSession d(db.url());
  auto r = Request(4);
  r.default_slots = 2;
  CHECK(PerSubscription(d.deliveries->Claim(r).rows) == std::map<std::string, int>{{subs[0], 2}, {subs[1], 2}});
  r.resume_after = subs[1];
  CHECK(PerSubscription(d.deliveries->Claim(r).rows) == std::map<std::string, int>{{subs[2], 2}, {subs[0], 2}});
  r.resume_after = subs[0];
  CHECK(PerSubscription(d.deliveries->Claim(r).rows) == std::map<std::string, int>{{subs[1], 2}, {subs[2], 2}});
  CHECK(d.deliveries->Claim(r).rows.empty());
}

TEST_CASE("a claim takes at most a subscription's window and none of an excluded subscription or tenant") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto a = AddSubscription(conn, "acme", {"a.*"});
  const auto b = AddSubscription(conn, "acme", {"b.*"});
  const auto c = AddSubscription(conn, "globex", {"c.*"});
  for (int i = 0; i < 5; ++i) {
    NewDelivery(conn, "acme", a, "a.e");
    NewDelivery(conn, "acme", b, "b.e");
    NewDelivery(conn, "globex", c, "c.e");
  }
  DaemonSession d(db.url());
  SUBCASE("windows: one of any subscription, three of a") {
    auto r = Request(100);
    r.default_slots = 1;
    r.window_subscriptions = {a};
    r.window_slots = {3};
    CHECK(PerSubscription(d.deliveries->Claim(r).rows) == std::map<std::string, int>{{a, 3}, {b, 1}, {c, 1}});
  }
  SUBCASE("an excluded subscription is not claimed") {
    auto r = Request(100);
    r.excluded_subscriptions = {b};
    CHECK(PerSubscription(d.deliveries->Claim(r).rows) == std::map<std::string, int>{{a, 5}, {c, 5}});
  }
  SUBCASE("an excluded tenant is not claimed") {
    auto r = Request(100);
    r.excluded_tenants = {"acme"};
    CHECK(PerSubscription(d.deliveries->Claim(r).rows) == std::map<std::string, int>{{c, 5}});
    // and what was not claimed is still there for the next claim
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NULL") == 10);
  }
}

TEST_CASE("a storm of due retries does not hide a new event") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto failing = AddSubscription(conn, "acme", {"failing.*"});
  const auto fresh = AddSubscription(conn, "globex", {"fresh.*"});
  std::vector<std::string> retries;
  for (int i = 0; i < 40; ++i) retries.push_back(NewDelivery(conn, "acme", failing, "failing.e"));
  for (const auto& id : retries) {
    Exec(conn,
         "UPDATE courier.deliveries SET status = 'retry_scheduled', attempts = 3, "
         "next_attempt_at = now() - interval '1 minute' WHERE id = $1",
         id);
  }
  const auto newest = NewDelivery(conn, "globex", fresh, "fresh.e");
  DaemonSession d(db.url());
  // Even a claim of 4 rows, all of them could be the older retries: the new event is among them.
  const auto claimed = d.deliveries->Claim(Request(4)).rows;
  REQUIRE(claimed.size() == 4);
  bool found = false;
  for (const auto& c : claimed) found = found || c.id == newest;
  CHECK(found);
}

TEST_CASE("a claim stops at its byte budget, but always takes one row however large") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const std::string payload = R"({"pad": ")" + std::string(4000, 'x') + R"("})";
  for (int i = 0; i < 6; ++i) NewDelivery(conn, "acme", sub, "test.event", payload);
  const int each = Count(conn, "SELECT max(payload_bytes) FROM courier.delivery_queue");
  CHECK(each >= 4000);
  DaemonSession d(db.url());
  auto r = Request(100);
  r.max_bytes = 2 * each + each / 2;
  const auto two = d.deliveries->Claim(r).rows;
  CHECK(two.size() == 2);
  for (const auto& c : two) CHECK(c.payload_bytes == each);
  r.max_bytes = 1;
  CHECK(d.deliveries->Claim(r).rows.size() == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NULL") == 3);
  // Not even one when the memory budget has less left than the row.
  r.max_first_bytes = each - 1;
  CHECK(d.deliveries->Claim(r).rows.empty());
  r.max_first_bytes = each;
  CHECK(d.deliveries->Claim(r).rows.size() == 1);
}

TEST_CASE("a payload beyond the budget does not keep smaller ones behind it out of the claim") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto big = AddSubscription(conn, "acme", {"export.*"});
  const auto small = AddSubscription(conn, "globex", {"order.*"});
  NewDelivery(conn, "acme", big, "export.ready", R"({"pad": ")" + std::string(100000, 'x') + R"("})");
  for (int i = 0; i < 3; ++i) NewDelivery(conn, "globex", small, "order.created", R"({"n": 1})");
  DaemonSession d(db.url());
  auto r = Request(100);
  r.max_bytes = 10000;
  SUBCASE("while a large one is held: the small ones go, the large one waits") {
    r.max_first_bytes = 10000;
    CHECK(PerSubscription(d.deliveries->Claim(r).rows) == std::map<std::string, int>{{small, 3}});
  }
  SUBCASE("otherwise the large one goes first, the small ones beside it") {
    r.max_first_bytes = std::int64_t{1} << 40;
    CHECK(PerSubscription(d.deliveries->Claim(r).rows) == std::map<std::string, int>{{big, 1}, {small, 3}});
  }
}

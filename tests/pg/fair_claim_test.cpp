// claim_due's fair shares (issue 15): round robin over subscriptions, the
// per-endpoint windows and exclusions the daemon passes, first attempts
// beside a storm of retries, and the byte budget.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "store/queries.hpp"
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
using pgtest::Scalar;
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

namespace {

// n deliveries for `sub`, due `apart_ms` apart from an hour ago, the oldest first.
void QueueSpread(pqxx::connection& conn, const std::string& sub, int n, int apart_ms = 1000) {
  Exec(conn,
       "INSERT INTO courier.events (tenant_id, event_type, payload) "
       "SELECT 'acme', 'spread.e', jsonb_build_object('n', g) FROM generate_series(1, $1) g",
       n);
  Exec(conn,
       "UPDATE courier.deliveries d SET next_attempt_at = now() - interval '1 hour' + o.n * $2 * interval '1 millisecond' "
       "FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM courier.deliveries WHERE subscription_id = $1) o "
       "WHERE d.id = o.id",
       sub, apart_ms);
}

std::int64_t DueUs(pqxx::connection& conn, const std::string& delivery_id) {
  return Scalar<std::int64_t>(
      conn, "SELECT (extract(epoch FROM due_at) * 1000000)::bigint FROM courier.delivery_queue WHERE delivery_id = $1",
      delivery_id);
}

// The shared buffers (hit and read) that one claim of `limit` rows by
// `worker` reads, floors as given; rolled back, so it claims nothing.
long long ClaimBuffers(pqxx::connection& conn, const std::string& worker, int limit,
                       const std::string& floor_subscriptions, const std::string& floor_due_us,
                       std::optional<long long> other_floor) {
  std::string sql;
  for (const auto& q : pgcourier::store::EmbeddedQueries()) {
    if (std::string(q.name) == pgcourier::store::query::kClaimDue) sql = q.sql;
  }
  REQUIRE(!sql.empty());
  pqxx::work txn(conn);
  txn.exec("PREPARE c(text, int, bigint, text[], bigint, text[], int[], int, text[], text[], text, bigint, text[], "
           "bigint[], bigint) AS " + sql);
  const std::string plan =
      txn.exec1("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE c(" + txn.quote(worker) + ", " +
                std::to_string(limit) + ", 60000, '{}', 1099511627776, '{}', '{}', " + std::to_string(limit) +
                ", '{}', '{}', '', 1099511627776, " + txn.quote(floor_subscriptions) + ", " +
                txn.quote(floor_due_us) + ", " + (other_floor ? std::to_string(*other_floor) : "NULL") + ")")[0]
          .as<std::string>();
  txn.exec("DEALLOCATE c");  // a session's prepared statement outlives the transaction
  txn.abort();
  // The plan's first buffer counts are its top node's: the whole statement.
  auto field = [&](const std::string& name) {
    const auto at = plan.find("\"" + name + "\": ");
    REQUIRE(at != std::string::npos);
    return std::stoll(plan.substr(at + name.size() + 4));
  };
  return field("Shared Hit Blocks") + field("Shared Read Blocks");
}

}  // namespace

TEST_CASE("a claim from a subscription's floor takes none of its first attempts due before it; a full scan does") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"spread.*"});
  const auto other = AddSubscription(conn, "globex", {"other.*"});
  QueueSpread(conn, sub, 10);
  const auto other_id = NewDelivery(conn, "globex", other, "other.e");
  Exec(conn, "UPDATE courier.deliveries SET next_attempt_at = now() - interval '2 hours' WHERE id = $1", other_id);
  DaemonSession d(db.url());
  auto ids = [&](const std::vector<ClaimedDelivery>& rows) {
    std::vector<std::int64_t> due;
    for (const auto& c : rows) due.push_back(DueUs(conn, c.id));
    std::sort(due.begin(), due.end());
    return due;
  };
  const auto all = Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE subscription_id = $1", sub);
  REQUIRE(all == 10);
  const std::int64_t fifth = Scalar<std::int64_t>(
      conn,
      "SELECT (extract(epoch FROM due_at) * 1000000)::bigint FROM courier.delivery_queue WHERE subscription_id = $1 "
      "ORDER BY due_at OFFSET 4 LIMIT 1",
      sub);
  auto r = Request(100);
  r.floor_subscriptions = {sub};
  r.floor_due_us = {fifth};
  SUBCASE("the floor's subscription from the floor on; the others from the lowest floor on") {
    r.other_floor_us = fifth;
    const auto claimed = d.deliveries->Claim(r);
    REQUIRE(claimed.rows.size() == 6);
    const auto due = ids(claimed.rows);
    CHECK(due.front() == fifth);  // the four before it and the other tenant's old row stay
    // The claim says where each first attempt was due, for the next floors.
    REQUIRE(claimed.first_attempts.size() == 6);
    for (const auto& [s, us] : claimed.first_attempts) {
      CHECK(s == sub);
      CHECK(us >= fifth);
    }
    CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NULL") == 5);
  }
  SUBCASE("a subscription without a floor, with no floor for the others, is looked at everywhere") {
    const auto claimed = d.deliveries->Claim(r);
    CHECK(PerSubscription(claimed.rows) == std::map<std::string, int>{{sub, 6}, {other, 1}});
  }
  SUBCASE("a full scan (no floors) takes everything due") {
    const auto claimed = d.deliveries->Claim(Request(100));
    CHECK(PerSubscription(claimed.rows) == std::map<std::string, int>{{sub, 10}, {other, 1}});
    CHECK(claimed.first_attempts.size() == 11);
  }
}

TEST_CASE("under a snapshot held open, a claim from the floor reads past none of the rows claims already took") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"spread.*"});
  QueueSpread(conn, sub, 20000, 10);
  {
    pqxx::nontransaction vacuum(conn);
    vacuum.exec("VACUUM ANALYZE courier.delivery_queue");
  }
  // Another session's snapshot, as a long report or pg_dump holds it: from
  // now on no row version that claims leave behind can be removed.
  pqxx::connection holder_conn(db.url());
  pqxx::transaction<pqxx::isolation_level::repeatable_read> holder(holder_conn);
  holder.exec("SELECT count(*) FROM courier.events");
  DaemonSession d(db.url());
  std::int64_t floor = 0;
  for (int i = 0; i < 78; ++i) {  // 19,968 of the 20,000, oldest first, as a drain would
    const auto claimed = d.deliveries->Claim(Request(256));
    REQUIRE(claimed.rows.size() == 256);
    floor = claimed.first_attempts.front().second;
    for (const auto& [s, us] : claimed.first_attempts) floor = std::min(floor, us);
  }
  REQUIRE(Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NULL") == 32);
  const std::string subs = "{" + sub + "}";
  const std::string at = "{" + std::to_string(floor - 1'000'000) + "}";
  const long long full = ClaimBuffers(conn, "w2", 8, "{}", "{}", std::nullopt);
  const long long bounded = ClaimBuffers(conn, "w2", 8, subs, at, floor - 1'000'000);
  const long long full_again = ClaimBuffers(conn, "w2", 8, "{}", "{}", std::nullopt);
  MESSAGE("claim of 8 behind 19,968 claimed rows under a held snapshot: " << full << " buffers from the start, "
          << bounded << " from the floor (" << full_again << " from the start again)");
  // From the start the claim reads the index entry and the heap behind each
  // of the 19,968 claimed rows; from the floor, only those of its last second.
  CHECK(full > 5 * bounded);
  CHECK(full_again > 5 * bounded);
  holder.abort();
}

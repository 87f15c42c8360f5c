// Schema checks, migrations, and the constraints that guard the tables.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <thread>
#include <string>
#include <vector>

#include "store/migrate.hpp"
#include "store/migrations.hpp"
#include "test_db.hpp"

namespace {

using pgtest::DaemonSession;
using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::Exec;
using pgtest::NewDelivery;
using pgtest::Scalar;
using pgtest::TestDb;

std::vector<std::string> AllMigrationLabels() {
  std::vector<std::string> labels;
  for (const auto& m : pgcourier::store::EmbeddedMigrations()) {
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "%03d_", m.version);
    labels.push_back(prefix + m.name);
  }
  return labels;
}

int HighestMigration() {
  const auto& all = pgcourier::store::EmbeddedMigrations();
  REQUIRE_FALSE(all.empty());
  return all.back().version;
}

// Runs `sql` and returns the SQLSTATE it failed with ("" if it succeeded).
template <typename... Args>
std::string SqlState(pqxx::connection& conn, const std::string& sql, Args&&... args) {
  try {
    Exec(conn, sql, std::forward<Args>(args)...);
  } catch (const pqxx::sql_error& e) {
    return e.sqlstate();
  }
  return "";
}

}  // namespace

TEST_CASE("CheckSchema reports a clone of the migrated template up to date") {
  TestDb db;
  DaemonSession store(db.url());
  const auto status = store.session.CheckSchema();
  CHECK(status.missing.empty());
  CHECK(status.required_version == HighestMigration());
  CHECK(status.current_version == status.required_version);
  CHECK(pgcourier::store::Migrate(db.url()).empty());
}

TEST_CASE("CheckSchema on an empty database reports every migration missing") {
  TestDb db(TestDb::Kind::kEmpty);
  DaemonSession store(db.url());
  const auto status = store.session.CheckSchema();
  CHECK(status.current_version == 0);
  CHECK(status.required_version == HighestMigration());
  CHECK(status.missing == AllMigrationLabels());
}

TEST_CASE("Migrate applies every migration to an empty database, and nothing the second time") {
  TestDb db(TestDb::Kind::kEmpty);
  CHECK(pgcourier::store::Migrate(db.url()) == AllMigrationLabels());
  CHECK(pgcourier::store::Migrate(db.url()).empty());

  DaemonSession store(db.url());
  const auto status = store.session.CheckSchema();
  CHECK(status.missing.empty());
  CHECK(status.current_version == HighestMigration());

  // The schema works: publish fans out.
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  CHECK(NewDelivery(conn, "acme", sub).rfind("dlv_", 0) == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.schema_migrations") ==
        static_cast<long long>(AllMigrationLabels().size()));
}

TEST_CASE("new_id is inlined into the caller's query and bound to pg_catalog at migration time") {
  TestDb db;
  pqxx::connection conn(db.url());
  // Inlined: the plan holds the expression, not a call of courier.new_id.
  std::string plan;
  for (const auto& row : Exec(conn, "EXPLAIN VERBOSE SELECT courier.new_id('obx_')")) plan += row[0].c_str();
  CHECK(plan.find("new_id") == std::string::npos);
  CHECK(plan.find("gen_random_uuid") != std::string::npos);
  // A caller's search_path cannot swap in its own lpad (or anything else).
  Exec(conn, "CREATE FUNCTION public.lpad(text, integer, text) RETURNS text LANGUAGE sql AS $$ SELECT 'HIJACKED' $$");
  Exec(conn, "SET search_path = public, pg_catalog");
  const auto id = Scalar<std::string>(conn, "SELECT courier.new_id('obx_')");
  CHECK(Scalar<bool>(conn, "SELECT $1 ~ '^obx_[0-9a-f]{29}$'", id));
  CHECK(Scalar<std::string>(conn, "SELECT lpad('x', 3, '0')") == "HIJACKED");  // the trap is live
  // Ids still sort by creation time (13 hex digits of microseconds first).
  const auto later = Scalar<std::string>(conn, "SELECT courier.new_id('obx_') FROM pg_sleep(0.002)");
  CHECK(later.substr(0, 17) > id.substr(0, 17));
}

TEST_CASE("delivery_attempts rows cannot be updated") {
  TestDb db;
  pqxx::connection conn(db.url());
  Exec(conn, "INSERT INTO courier.delivery_attempts (delivery_id, attempt, started_at, outcome, worker) "
             "VALUES ('dlv_x', 1, now(), 'delivered', 'worker-1')");
  CHECK(SqlState(conn, "UPDATE courier.delivery_attempts SET outcome = 'timeout' WHERE delivery_id = 'dlv_x'") ==
        "23000");
  CHECK(SqlState(conn, "UPDATE courier.delivery_attempts SET worker = worker") == "23000");
  CHECK(pgtest::Scalar<std::string>(conn, "SELECT outcome FROM courier.delivery_attempts WHERE delivery_id = 'dlv_x'") ==
        "delivered");
}

TEST_CASE("deliveries CHECK constraints refuse an unknown status; the queue a half lease") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto id = NewDelivery(conn, "acme", sub);

  CHECK(SqlState(conn, "UPDATE courier.deliveries SET status = 'lost' WHERE id = $1", id) == "23514");
  // 'delivering' is not a stored status: the lease lives in the queue.
  CHECK(SqlState(conn, "UPDATE courier.deliveries SET status = 'delivering' WHERE id = $1", id) == "23514");
  CHECK(SqlState(conn, "UPDATE courier.delivery_queue SET lease_owner = 'w' WHERE delivery_id = $1", id) == "23514");
  CHECK(SqlState(conn, "UPDATE courier.delivery_queue SET lease_expires_at = now() WHERE delivery_id = $1", id) ==
        "23514");
  CHECK(SqlState(conn, "UPDATE courier.delivery_queue SET lease_owner = 'w', lease_expires_at = now() "
                       "WHERE delivery_id = $1",
                 id) == "");
}

TEST_CASE("the queue follows every write of courier.deliveries") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto id = NewDelivery(conn, "acme", sub);
  auto queued = [&] { return Count(conn, "SELECT count(*) FROM courier.delivery_queue WHERE delivery_id = $1", id); };
  CHECK(queued() == 1);
  // A lease is kept through an update that records no attempt, dropped by one that does.
  pgtest::Lease(conn, id, "w1");
  Exec(conn, "UPDATE courier.deliveries SET last_error = 'note' WHERE id = $1", id);
  CHECK(Scalar<std::string>(conn, "SELECT lease_owner FROM courier.delivery_queue WHERE delivery_id = $1", id) == "w1");
  Exec(conn, "UPDATE courier.deliveries SET status = 'retry_scheduled', attempts = 1, "
             "next_attempt_at = now() + interval '1 hour' WHERE id = $1", id);
  const auto q = pgtest::Row(conn, "SELECT lease_owner IS NULL, retry, attempts, due_at > now() + interval '59 min' "
                                   "FROM courier.delivery_queue WHERE delivery_id = $1", id);
  CHECK(q[0].as<bool>());
  CHECK(q[1].as<bool>());
  CHECK(q[2].as<int>() == 1);
  CHECK(q[3].as<bool>());
  // Finished: out of the queue; dead-lettered: in the dead letters; replayed: back in the queue only.
  Exec(conn, "UPDATE courier.deliveries SET status = 'dead_lettered', completed_at = now() WHERE id = $1", id);
  CHECK(queued() == 0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_dead_letters WHERE delivery_id = $1", id) == 1);
  CHECK(Scalar<int>(conn, "SELECT courier.replay_deliveries(subscription_id => $1)", sub) == 1);
  CHECK(queued() == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.delivery_dead_letters") == 0);
  CHECK_FALSE(Scalar<bool>(conn, "SELECT retry FROM courier.delivery_queue WHERE delivery_id = $1", id));  // a fresh budget
  Exec(conn, "DELETE FROM courier.delivery_attempts");
  Exec(conn, "DELETE FROM courier.deliveries WHERE id = $1", id);
  CHECK(queued() == 0);
}

TEST_CASE("two Migrate calls racing on an empty database apply each migration once") {
  TestDb db(TestDb::Kind::kEmpty);
  std::vector<std::string> applied[2];
  std::string errors[2];
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        try {
          applied[i] = pgcourier::store::Migrate(db.url());
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    }
  }
  CHECK(errors[0] == "");
  CHECK(errors[1] == "");
  std::vector<std::string> all = applied[0];
  all.insert(all.end(), applied[1].begin(), applied[1].end());
  std::sort(all.begin(), all.end());
  CHECK(all == AllMigrationLabels());
  DaemonSession store(db.url());
  CHECK(store.session.CheckSchema().missing.empty());
}

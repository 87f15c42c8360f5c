// Deadlines on the daemon's database round trips (store/watchdog.hpp,
// store/session.hpp): the URL's connection deadlines, a round trip the
// database does not answer in time, the server's statement timeout, and the
// interrupt of a hard stop.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "store/pg/session_impl.hpp"
#include "store/session.hpp"
#include "store/watchdog.hpp"
#include "test_db.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::store::Session;
using pgcourier::store::SessionOptions;
using pgcourier::store::StoreError;
using pgcourier::store::Watchdog;
using pgcourier::store::WithDeadlines;
using pgtest::TestDb;
using Steady = std::chrono::steady_clock;

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A statement that takes `seconds` on the server, on `session`'s connection,
// with its round trip guarded as the daemon's are.
void Sleep(Session& session, double seconds) {
  session.impl().Guarded("sleep", [&] {
    pqxx::nontransaction txn(session.impl().conn);
    txn.exec("SELECT pg_sleep(" + std::to_string(seconds) + ")");
    return 0;
  });
}

std::string ErrorOf(Session& session, double seconds, StoreError::Kind* kind = nullptr) {
  try {
    Sleep(session, seconds);
  } catch (const StoreError& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("the URL gets connect, keepalive and TCP deadlines, unless it sets them itself") {
  const auto url = WithDeadlines("postgresql://courier@db1:5432,db2:5433/pgcourier?sslmode=require", 15s);
  CAPTURE(url);
  CHECK(Has(url, "host='db1,db2'"));
  CHECK(Has(url, "port='5432,5433'"));
  CHECK(Has(url, "sslmode='require'"));
  CHECK(Has(url, "connect_timeout=5"));
  CHECK(Has(url, "keepalives=1"));
  CHECK(Has(url, "keepalives_idle=5"));
  CHECK(Has(url, "keepalives_count=3"));
  CHECK(Has(url, "tcp_user_timeout=15000"));
  const auto own = WithDeadlines(R"(host=db1 connect_timeout=3 keepalives=0 password='it\'s')", 15s);
  CAPTURE(own);
  CHECK(Has(own, "connect_timeout='3'"));
  CHECK(Has(own, "keepalives='0'"));
  CHECK_FALSE(Has(own, "connect_timeout=5"));
  CHECK(Has(own, "tcp_user_timeout=15000"));
  CHECK(Has(own, R"(password='it\'s')"));
  // The libpq environment (PGHOST...) still applies to an empty URL.
  CHECK(WithDeadlines("", 15s).rfind("connect_timeout=", 0) == 0);
  try {
    WithDeadlines("postgresql://[bad", 15s);
    FAIL("a URL libpq cannot parse was accepted");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).rfind("database_url: ", 0) == 0);
  }
}

TEST_CASE("a round trip the database does not answer within the timeout drops the connection and says why") {
  TestDb db;
  SessionOptions options;
  options.database_url = db.url();
  options.watchdog = std::make_shared<Watchdog>();
  options.round_trip_timeout = 1000ms;
  Session session(options);
  const auto started = Steady::now();
  StoreError::Kind kind{};
  const auto error = ErrorOf(session, 10, &kind);
  const auto took = Steady::now() - started;
  CAPTURE(error);
  CHECK(kind == StoreError::Kind::kConnectionLost);
  CHECK(Has(error, "sleep: no answer from the database within 1000 ms"));
  CHECK(took >= 1000ms);
  CHECK(took < 3000ms);
  // A round trip within the timeout is left alone.
  Session fresh(options);
  CHECK(ErrorOf(fresh, 0.2).empty());
}

TEST_CASE("the server's statement timeout cancels a slow statement first, and the connection stays") {
  TestDb db;
  SessionOptions options;
  options.database_url = db.url();
  options.watchdog = std::make_shared<Watchdog>();
  options.round_trip_timeout = 5000ms;
  options.statement_timeout = 300ms;
  Session session(options);
  StoreError::Kind kind{};
  const auto error = ErrorOf(session, 3, &kind);
  CAPTURE(error);
  CHECK(kind == StoreError::Kind::kStatement);
  CHECK(Has(error, "statement timeout"));
  CHECK(ErrorOf(session, 0).empty());  // the same connection goes on
}

TEST_CASE("an interrupt ends every round trip in progress at once, and every later one") {
  TestDb db;
  SessionOptions options;
  options.database_url = db.url();
  options.watchdog = std::make_shared<Watchdog>();
  options.round_trip_timeout = 60000ms;
  Session session(options);
  Session other(options);
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    options.watchdog->Interrupt();
  });
  const auto started = Steady::now();
  StoreError::Kind kind{};
  const auto error = ErrorOf(session, 30, &kind);
  stopper.join();
  CHECK(kind == StoreError::Kind::kConnectionLost);
  CHECK(Steady::now() - started < 5000ms);
  CHECK(options.watchdog->interrupted());
  // A session that was idle meanwhile fails its next round trip at once.
  const auto next = Steady::now();
  CHECK_FALSE(ErrorOf(other, 30).empty());
  CHECK(Steady::now() - next < 2000ms);
}

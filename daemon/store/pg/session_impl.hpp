// The inside of a Session, for the store's own translation units: the libpq
// connection and the timed execution of a named statement. Internal to
// daemon/store/.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/pg/errors.hpp"
#include "store/session.hpp"
#include "store/watchdog.hpp"

namespace pgcourier::store {

struct Session::Impl {
  pqxx::connection conn;
  StatementObserver observer;
  std::shared_ptr<Watchdog> watchdog;
  std::chrono::milliseconds round_trip_timeout;
  bool prepared;                                         // else statements go by text
  std::unordered_map<std::string_view, std::string> text;  // name -> SQL, when not prepared
  std::vector<Session::Notified> notified;  // since the last TakeNotifications
  std::vector<std::unique_ptr<pqxx::notification_receiver>> receivers;

  explicit Impl(const SessionOptions& options);

  // Runs fn (database work on conn) with the round trip's deadline armed,
  // translating errors (pg::Translate); a round trip the watchdog cut short
  // is a lost connection that says so.
  template <typename Fn>
  auto Guarded(std::string_view what, Fn&& fn) -> decltype(fn()) {
    std::optional<Watchdog::Armed> armed;
    if (watchdog) armed.emplace(*watchdog, conn.sock(), round_trip_timeout);
    try {
      return pg::Translate(what, std::forward<Fn>(fn));
    } catch (const StoreError& e) {
      if (!armed || !armed->fired()) throw;
      throw StoreError(StoreError::Kind::kConnectionLost,
                       std::string(what) + ": no answer from the database within " +
                           std::to_string(round_trip_timeout.count()) +
                           " ms (database_timeout), or the daemon is stopping: connection dropped");
    }
  }

  // Executes the prepared statement `name` (a file of queries/) in `txn`,
  // timing it for the observer.
  template <typename... Args>
  pqxx::result Exec(pqxx::transaction_base& txn, const char* name, Args&&... args) {
    const auto start = std::chrono::steady_clock::now();
    pqxx::result r;
    if (prepared) {
      r = txn.exec_prepared(name, args...);
    } else {
      r = txn.exec_params(text.at(name), args...);
    }
    if (observer) observer(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return r;
  }

  // `name` in a transaction of its own, committed; StoreError on failure.
  template <typename... Args>
  pqxx::result ExecCommitted(const char* name, Args&&... args) {
    return Guarded(name, [&] {
      pqxx::work txn(conn);
      pqxx::result r = Exec(txn, name, std::forward<Args>(args)...);
      txn.commit();
      return r;
    });
  }

  // `name` read-only.
  template <typename... Args>
  pqxx::result ExecRead(const char* name, Args&&... args) {
    return Guarded(name, [&] {
      pqxx::read_transaction txn(conn);
      return Exec(txn, name, std::forward<Args>(args)...);
    });
  }
};

}  // namespace pgcourier::store

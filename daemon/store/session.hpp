// Session: one database connection of the daemon, with every statement of
// queries/ prepared under its own name and every execution timed for the
// observer (the metrics' statement label). The engine holds two: the main
// session (claims, LISTEN, maintenance leadership, reads) and the writer's
// (every result of every lane). The lane stores (deliveries_store.hpp,
// runs_store.hpp) run their statements on a Session.
//
// Threading: one thread at a time; not thread-safe. Errors: StoreError
// (store/errors.hpp); no libpqxx type appears in this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/errors.hpp"
#include "store/types.hpp"

namespace pgcourier::store {

class Watchdog;

struct SessionOptions {
  std::string database_url;  // libpq URI or key=value; empty: the libpq environment (PGHOST...)
  StatementObserver observer;
  // A database that does not answer a round trip within this is taken as
  // hung: the connection is dropped (watchdog.hpp). It also bounds the
  // connection attempt (connect_timeout, per host) and the kernel's patience
  // (tcp_user_timeout, TCP keepalives), unless the URL sets those itself.
  // Null watchdog: no deadlines (the CLI).
  std::shared_ptr<Watchdog> watchdog;
  std::chrono::milliseconds round_trip_timeout{15000};
  // The server's statement_timeout for the daemon's statements (0: the
  // server's own setting), set when the session starts.
  std::chrono::milliseconds statement_timeout{0};
  // False through a pooler in transaction mode (pgbouncer 1.18 keeps no
  // prepared statement across transactions): each statement is sent with its
  // text (unnamed, parameters still bound), and no session setting is made.
  bool prepared_statements = true;
};

// `url` with connect_timeout, keepalives and tcp_user_timeout derived from
// `timeout` for each of them the URL does not set (the URL always wins).
// Throws StoreError (kStatement) when libpq cannot parse the URL.
std::string WithDeadlines(const std::string& url, std::chrono::milliseconds timeout);

class Session {
 public:
  // Connects. Throws StoreError (kConnectionLost when the server cannot be reached).
  explicit Session(const SessionOptions& options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Which embedded migrations this database lacks.
  SchemaStatus CheckSchema();

  // LISTEN on each channel (the lanes': courier_deliveries, courier_runs).
  // After this, socket() becomes readable when a notification arrives;
  // TakeNotifications() consumes them.
  void Listen(const std::vector<std::string>& channels);
  int socket() const;
  // Non-blocking: reads what arrived; how many notifications each channel got since the last call.
  struct Notified {
    std::string channel;
    int count = 0;
  };
  std::vector<Notified> TakeNotifications();
  // NOTIFY courier_outbox (empty payload), for the outcome statements that defer theirs.
  void NotifyOutbox();
  // Maintenance leadership: true while this connection holds the session lock.
  bool TryBecomeLeader();
  // The database's clock (now()), in unix microseconds.
  std::int64_t DatabaseNowMicros();

  struct Impl;  // store/pg/session_impl.hpp: for the lane stores only
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::store

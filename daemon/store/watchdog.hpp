// Watchdog: a deadline on every database round trip of the daemon.
//
// libpq's calls block, and a database that hangs instead of failing (a
// stopped server, a network partition, stuck storage) never answers: the
// kernel of a frozen server still acknowledges TCP data and keepalives, so
// neither keepalives nor tcp_user_timeout notice, and a partition is noticed
// by TCP only after about 15 minutes. So every round trip of a Session is
// armed here with its deadline; when one passes, the watchdog's thread shuts
// the connection's socket down (shutdown(2), not close: the descriptor stays
// the owner's), the blocked call fails at once as a lost connection, and the
// engine reconnects (libpq tries every host of the URL) while it keeps its
// results in memory.
//
// Interrupt() fires every armed round trip now and makes every later one
// fail at once: the engine's hard stop, so that a hung database can never
// hold the daemon past its shutdown grace.
//
// Threading: every method is thread-safe; one Watchdog serves all the
// sessions of an engine (main and writer, on their own threads).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

namespace pgcourier::store {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  Watchdog();
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // One armed round trip; disarmed when it goes out of scope.
  class Armed {
   public:
    Armed(Watchdog& watchdog, int socket, std::chrono::milliseconds timeout);
    ~Armed();
    Armed(const Armed&) = delete;
    Armed& operator=(const Armed&) = delete;
    // Whether the deadline passed (or Interrupt came) and the socket was shut down.
    bool fired() const;

   private:
    Watchdog& watchdog_;
    std::uint64_t id_;
  };

  void Interrupt();
  bool interrupted() const;

 private:
  struct Entry {
    int socket;
    Clock::time_point deadline;
    bool fired = false;
  };
  void Loop();
  void FireLocked(Entry& entry);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint64_t, Entry> armed_;  // guarded by mu_
  std::uint64_t next_id_ = 1;             // guarded by mu_
  bool interrupted_ = false;              // guarded by mu_
  bool stopping_ = false;                 // guarded by mu_
  // The deadline the thread sleeps until (max: none): a new one later than it
  // (the usual case, every round trip has the same timeout) needs no wake-up.
  Clock::time_point sleeping_until_ = Clock::time_point::max();  // guarded by mu_
  std::thread thread_;                    // last: starts after the members above exist
};

}  // namespace pgcourier::store

// Retention: removing finished work past its retention window (each lane's
// Prune), on a thread and database session of its own, so the claim path
// never waits for it.
//
// It used to run on the engine's thread between claims. Retention deletes at
// the rate work finishes, and under a snapshot held open (a long report, a
// pg_dump) each sweep re-reads the rows earlier sweeps removed, which VACUUM
// cannot take away until the snapshot ends: in bench/run xmin it grew to 40 %
// of the engine thread's time and the drain fell with it. Here it slows only
// itself, and what it removes during such a hold frees nothing before the
// hold ends anyway.
//
// A sweep starts maintenance_interval after the previous one ended, or as
// long after as that one took if longer: at most half of this thread's time
// (each lane's Prune is bounded per call, so a sweep is too).
//
// While this daemon leads, the session is kept open and looked at every
// kLivenessCheck (a non-blocking read): one the server closed (a restart,
// pg_terminate_backend) is replaced at once, not at the next sweep, with
// engine/backoff.hpp between failed attempts. It is closed when this daemon
// stops leading.
//
// Only the maintenance leader prunes (SetLeader, from the engine's thread,
// which holds the leadership lock on its main session). A sweep begun before
// the leadership moved may overlap the new leader's first: the prune
// functions serialise on courier.prune_cursor or skip locked rows.
//
// Threading: SetLeader, Start and Stop from the engine's thread. Paced by
// the steady clock (not the engine's injected one): it is never on a path a
// test drives by time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/backoff.hpp"
#include "lanes/lane.hpp"
#include "store/deliveries_store.hpp"
#include "store/runs_store.hpp"
#include "store/session.hpp"

namespace pgcourier::engine {

struct RetentionOptions {
  store::SessionOptions session;  // its watchdog, once interrupted, also stops reconnects
  std::string delivery_events;    // all, failures, none (store::NewDeliveriesStore)
  std::chrono::milliseconds interval{5000};
};

class Retention {
 public:
  explicit Retention(RetentionOptions options);
  ~Retention();  // Stop()s
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  // The lanes whose Prune runs here (const, thread-safe: see lanes/lane.hpp).
  void Start(std::vector<const lanes::Lane*> lanes);
  // Joins the thread after the statement in progress, if any.
  void Stop();
  // Whether this daemon is the maintenance leader (and claiming). Becoming
  // one starts a sweep at once.
  void SetLeader(bool leader);

  static constexpr std::chrono::milliseconds kLivenessCheck{200};

 private:
  void Run();
  void Sweep();
  // Opens the session if there is none (not before next_connect_), or reads
  // what arrived on it; false, with the session dropped, if it is lost.
  bool EnsureSession();
  void LoseSession(const store::StoreError& e);
  void DropSession();

  RetentionOptions options_;
  std::vector<const lanes::Lane*> lanes_;  // set before the thread starts
  std::unique_ptr<store::Session> session_;  // the thread's
  std::unique_ptr<store::DeliveriesStore> deliveries_;
  std::unique_ptr<store::RunsStore> runs_;
  Backoff reconnect_;                                   // the thread's
  std::chrono::steady_clock::time_point next_connect_{};  // the thread's

  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;    // guarded by mu_
  bool leader_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace pgcourier::engine

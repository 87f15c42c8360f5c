#include "engine/engine.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "base/fd.hpp"
#include "engine/backoff.hpp"
#include "engine/maintenance.hpp"
#include "engine/retention.hpp"
#include "engine/shutdown.hpp"
#include "engine/writer.hpp"
#include "http/executor.hpp"
#include "store/deliveries_store.hpp"
#include "store/runs_store.hpp"
#include "store/session.hpp"
#include "store/watchdog.hpp"

namespace pgcourier::engine {
namespace {

using model::Millis;
using Steady = std::chrono::steady_clock::time_point;

// The coalesced NOTIFY courier_outbox after outcome statements: at most this often.
constexpr Millis kOutboxNotifyInterval{100};

// The main session and the stores over it, built together and lost together.
struct MainSession {
  std::unique_ptr<store::Session> session;
  std::unique_ptr<store::DeliveriesStore> deliveries;
  std::unique_ptr<store::RunsStore> runs;
  lanes::Stores stores() const { return {*deliveries, *runs}; }
};

}  // namespace

struct Engine::Impl {
  // Constant after construction.
  EngineOptions options;
  const config::Settings& settings;
  base::SystemClock system_clock;
  const base::Clock& clock;
  metrics::NullMetrics null_metrics;
  metrics::Metrics& metrics;

  // Thread-safe entry points.
  base::EventFd control;
  std::atomic<bool> drain_requested{false};
  std::atomic<bool> stop_requested{false};
  std::mutex policies_mu;
  std::shared_ptr<const config::PolicySet> replacement_policies;  // guarded by policies_mu

  // The deadline of every database round trip, shared by the main session
  // and the writer's; Interrupt() on a hard stop (thread-safe).
  std::shared_ptr<store::Watchdog> watchdog = std::make_shared<store::Watchdog>();

  // Owned by the engine's thread.
  http::Executor executor;
  Writer writer;
  Retention retention;
  lanes::Policies policies;
  lanes::OutboxNotifier outbox;
  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> unit{0.0, 1.0};
  std::uint64_t next_token = 1;
  std::vector<std::unique_ptr<lanes::Lane>> lanes;
  std::vector<lanes::Lane*> lane_ptrs;
  std::vector<lanes::Lane*> writing;  // lanes whose turn job is with the writer
  Maintenance maintenance;
  Shutdown shutdown;
  MainSession main;
  Backoff reconnect;
  Steady next_connect{};
  Steady next_poll{};
  Steady next_outbox_notify{};
  Steady next_heartbeat{};
  bool ready_sent = false;
  bool wake_held = true;  // at start-up too: a restart may have fixed what held them

  explicit Impl(EngineOptions opts)
      : options(std::move(opts)),
        settings(options.settings),
        clock(options.clock ? *options.clock : system_clock),
        metrics(options.metrics ? *options.metrics : null_metrics),
        // A request that waits longer than a lease for a transfer slot goes back
        // unsent (the slots are all taken by slow receivers): another daemon may do better.
        executor(http::ExecutorOptions{settings.concurrency, settings.user_agent, 1 << 20, settings.concurrency,
                                       settings.lease_duration}),
        writer(WriterOptions{SessionOptions(/*main_session=*/false), settings.worker_id, settings.delivery_events}),
        retention(RetentionOptions{SessionOptions(/*main_session=*/false), settings.delivery_events,
                                   settings.maintenance_interval}),
        policies(options.policies),
        maintenance(settings, clock, metrics),
        shutdown(settings.shutdown_grace) {
    const lanes::LaneContext context{settings,
                                     executor,
                                     clock,
                                     metrics,
                                     options.secret_box,
                                     policies,
                                     outbox,
                                     [this] { return next_token++; },
                                     [this] { return unit(rng); }};
    for (const auto& factory : options.lanes) {
      lanes.push_back(factory(context));
      lane_ptrs.push_back(lanes.back().get());
    }
  }

  store::StatementObserver Observer() {
    return [this](const char* name, double seconds) { metrics.StatementDuration(name, seconds); };
  }

  // The main session (claims, LISTEN, the maintenance lock) needs a session
  // of its own: through a pooler in transaction mode it goes direct, and the
  // writer's goes through the pooler with its statements unprepared.
  store::SessionOptions SessionOptions(bool main_session) {
    const bool pooled = settings.database_pooler == "transaction";
    store::SessionOptions o;
    o.database_url = pooled && main_session ? settings.database_direct_url : settings.database_url;
    o.prepared_statements = !(pooled && !main_session);
    o.observer = Observer();
    o.watchdog = watchdog;
    o.round_trip_timeout = settings.database_timeout;
    // The server cancels a slow statement first (the connection stays), the
    // watchdog drops a connection that does not answer at all.
    o.statement_timeout = settings.database_timeout * 4 / 5;
    return o;
  }

  Millis JitteredPoll() {
    const double factor = 0.8 + 0.4 * unit(rng);
    return Millis(static_cast<std::int64_t>(static_cast<double>(settings.poll_interval.count()) * factor));
  }

  // Readiness ------------------------------------------------------------------

  std::optional<std::pair<bool, std::string>> status;  // the last one reported

  // Tells /readyz and systemd's STATUS= once per change.
  void Status(bool ready, std::string reason) {
    if (status && status->first == ready && status->second == reason) return;
    metrics.Readiness(ready, reason);
    if (options.on_status) options.on_status(ready, reason);
    status.emplace(ready, std::move(reason));
  }

  // The main session -----------------------------------------------------------

  // False when the daemon must not run (schema too old).
  bool EnsureConnected() {
    // Only claims, maintenance and LISTEN need the main session: once
    // draining, the writer's is enough, and a connection attempt to a hung
    // database would only hold the loop.
    if (main.session || clock.Now() < next_connect || !shutdown.claiming()) return true;
    try {
      MainSession fresh;
      fresh.session = std::make_unique<store::Session>(SessionOptions(/*main_session=*/true));
      const auto schema = fresh.session->CheckSchema();
      if (!schema.missing.empty()) {
        std::string missing;
        for (const auto& m : schema.missing) missing += (missing.empty() ? "" : ", ") + m;
        spdlog::critical(
            "database schema is at version {} but pgcourierd needs version {}: missing migration(s) {}; "
            "run 'pgcourierctl migrate' against this database",
            schema.current_version, schema.required_version, missing);
        Status(false, fmt::format("database schema is at version {}, pgcourierd needs {}", schema.current_version,
                                  schema.required_version));
        return false;
      }
      std::vector<std::string> channels;
      for (const auto* lane : lane_ptrs) channels.emplace_back(lane->channel());
      fresh.session->Listen(channels);
      fresh.deliveries = store::NewDeliveriesStore(*fresh.session, settings.delivery_events);
      fresh.runs = store::NewRunsStore(*fresh.session);
      main = std::move(fresh);
      maintenance.Connected();
      if (!reconnect.reset() || ready_sent) {
        spdlog::info("database connection established");
        if (ready_sent) metrics.DatabaseReconnect();
      }
      reconnect.Reset();
      for (auto* lane : lane_ptrs) lane->Notified();
      Status(true, "delivering");
    } catch (const store::StoreError& e) {
      Status(false, OneLine("database unreachable: ", e.what()));
      const auto delay = reconnect.Next();
      spdlog::warn("cannot reach the database ({}); retrying in {} ms", e.what(), delay.count());
      next_connect = clock.Now() + delay;
    }
    return true;
  }

  void LoseConnection(const store::StoreError& e) {
    maintenance.ConnectionLost();
    std::size_t unwritten = writer.pending_items();
    for (auto* lane : lane_ptrs) unwritten += lane->unwritten();
    spdlog::error("database connection lost: {}; {} result(s) kept in memory until it is back", e.what(), unwritten);
    main = MainSession{};
    next_connect = clock.Now() + reconnect.Next();
    if (shutdown.claiming()) Status(false, OneLine("database unreachable: ", e.what()));
  }

  static std::string OneLine(std::string_view prefix, std::string_view text) {
    std::string line(prefix);
    for (const char c : text) line += (c == '\n' || c == '\r') ? ' ' : c;
    return line;
  }

  // Runs fn on the main session's stores, turning a lost connection into a
  // reconnect and a failed statement into a log line. False if fn did not complete.
  template <typename Fn>
  bool WithMain(const char* what, Fn&& fn) {
    if (!main.session) return false;
    try {
      fn(main.stores());
      return true;
    } catch (const store::StoreError& e) {
      if (e.kind() == store::StoreError::Kind::kConnectionLost) {
        LoseConnection(e);
      } else {
        spdlog::error("{} failed: {}", what, e.what());
      }
      return false;
    }
  }

  // Reads what arrived on the NOTIFY socket; true when a lane was notified.
  bool ReadNotifications() {
    if (!main.session) return false;
    try {
      const auto notified = main.session->TakeNotifications();
      for (const auto& n : notified) {
        for (auto* lane : lane_ptrs) {
          if (n.channel == lane->channel()) lane->Notified();
        }
      }
      return !notified.empty();
    } catch (const store::StoreError& e) {
      if (e.kind() == store::StoreError::Kind::kConnectionLost) LoseConnection(e);
      return false;
    }
  }

  // Slots ----------------------------------------------------------------------

  // Requests may be submitted beyond the concurrency: the executor runs at most
  // `concurrency` at once and starts the others, in order, the moment a
  // transfer finishes (no round trip through this loop, which may be waiting
  // for the database). A quarter of the concurrency, at most one claim batch,
  // may wait that way.
  int Standby() const { return std::min(settings.max_claim_batch, std::max(1, settings.concurrency / 4)); }
  int Busy() const {
    int busy = 0;
    for (const auto* lane : lane_ptrs) busy += lane->busy();
    return busy;
  }
  int FreeSlots() const { return settings.concurrency + Standby() - Busy(); }

  std::size_t Unwritten() const {
    std::size_t unwritten = writer.pending_items();
    for (const auto* lane : lane_ptrs) unwritten += lane->unwritten();
    return unwritten;
  }
  bool Settled() const { return Busy() == 0 && Unwritten() == 0 && writer.pending_jobs() == 0; }

  // The turn ---------------------------------------------------------------------

  void AdoptNewPolicies() {
    std::shared_ptr<const config::PolicySet> fresh;
    {
      std::lock_guard lock(policies_mu);
      fresh.swap(replacement_policies);
    }
    if (!fresh) return;
    policies.Replace(std::move(fresh));
    wake_held = true;  // work held for an unknown policy may be deliverable now
  }

  void CollectCompletions() {
    for (auto& c : executor.TakeCompletions()) {
      for (auto* lane : lane_ptrs) {
        if (lane->Complete(c)) break;
      }
    }
  }

  // Written jobs go back to their lanes; each lane not writing hands over
  // what it has now, so results made during a write form the next batch.
  void Writes() {
    for (auto& w : writer.TakeDone()) {
      if (w.turn) {
        writing.erase(std::remove(writing.begin(), writing.end(), w.lane), writing.end());
      } else {
        maintenance.RescueWritten(w.lane);
      }
      w.lane->Written(std::move(w.job));
    }
    for (auto* lane : lane_ptrs) {
      if (std::find(writing.begin(), writing.end(), lane) != writing.end()) continue;
      if (auto job = lane->TakeWrites()) {
        writing.push_back(lane);
        writer.Submit(lane, std::move(job), /*turn=*/true);
      }
    }
  }

  // Every third of the lease: the leases of everything in flight are renewed,
  // through the writer like any other write.
  void MaybeHeartbeat() {
    const Steady now = clock.Now();
    if (now < next_heartbeat) return;
    next_heartbeat = now + settings.lease_duration / 3;
    for (auto* lane : lane_ptrs) {
      if (auto job = lane->Heartbeat()) writer.Submit(lane, std::move(job), /*turn=*/false);
    }
  }

  void MaybeNotifyOutbox() {
    if (!outbox.owed() || !main.session || clock.Now() < next_outbox_notify) return;
    try {
      main.session->NotifyOutbox();
      outbox.Sent();
      next_outbox_notify = clock.Now() + kOutboxNotifyInterval;
    } catch (const store::StoreError& e) {
      if (e.kind() == store::StoreError::Kind::kConnectionLost) LoseConnection(e);
    }
  }

  void MaybeWakeHeld() {
    if (!wake_held || !main.session) return;
    bool woke = true;
    for (auto* lane : lane_ptrs) {
      woke &= WithMain("waking held work", [&](const lanes::Stores& s) { lane->WakeHeld(s); });
    }
    if (woke) wake_held = false;
  }

  void MaybeMaintain() {
    if (!main.session) return;
    WithMain("maintenance", [&](const lanes::Stores& s) { maintenance.Tick(*main.session, s, lane_ptrs, writer); });
  }

  // Claims for the lanes that want to, sharing the free slots equally; a lane
  // with a backlog waits for a useful batch (an eighth of the concurrency)
  // instead of claiming one row per completion: fewer, larger transactions.
  void MaybeClaim() {
    if (!main.session) return;
    ReadNotifications();
    const Steady now = clock.Now();
    const bool poll_due = now >= next_poll;
    bool claimed_any = false;
    // The writer is a whole concurrency's worth of results behind (a slow or
    // unreachable database): no new leases until it catches up.
    if (Unwritten() < static_cast<std::size_t>(settings.concurrency)) {
      std::vector<lanes::Lane*> wanting;
      for (auto* lane : lane_ptrs) {
        if (lane->WantsClaim(now, poll_due)) wanting.push_back(lane);
      }
      int free = FreeSlots();
      for (std::size_t i = 0; i < wanting.size() && main.session; ++i) {
        auto* lane = wanting[i];
        const int share = free / static_cast<int>(wanting.size() - i);
        const int min_batch =
            lane->backlog() ? std::max(1, std::min(settings.concurrency / 8, settings.max_claim_batch)) : 1;
        if (share < min_batch) continue;
        lanes::ClaimResult result;
        if (WithMain("claiming", [&](const lanes::Stores& s) { result = lane->Claim(s, share); })) claimed_any = true;
        free -= result.claimed;
      }
    }
    if (poll_due && main.session) next_poll = now + JitteredPoll();
    if (claimed_any && !ready_sent) {
      ready_sent = true;
      spdlog::info("pgcourierd {} ready: concurrency {}, lease {} ms renewed every {} ms", settings.worker_id,
                   settings.concurrency, settings.lease_duration.count(), settings.lease_duration.count() / 3);
      if (options.on_ready) options.on_ready();
    }
  }

  int PollTimeoutMs() const {
    const Steady now = clock.Now();
    Steady until = now + Millis(1000);
    if (!main.session) {
      until = std::min(until, next_connect);
    } else if (shutdown.claiming()) {
      until = std::min({until, next_poll, maintenance.next_due()});
      until = std::min(until, next_heartbeat);
      for (const auto* lane : lane_ptrs) {
        // (A due retry that found no free slot waits for a completion, not a busy loop.)
        if (auto wake = lane->NextWake(); wake && *wake > now) until = std::min(until, *wake + Millis(1));
      }
    }
    if (auto deadline = shutdown.deadline()) until = std::min(until, *deadline);
    if (main.session && outbox.owed()) until = std::min(until, next_outbox_notify);
    if (options.heartbeat_interval.count() > 0) until = std::min(until, now + options.heartbeat_interval);
    const auto ms = std::chrono::duration_cast<Millis>(until - now).count();
    return static_cast<int>(std::clamp<std::int64_t>(ms, 0, 1000));
  }

  void WaitForWork() {
    int timeout = PollTimeoutMs();
    // A notification that arrived while another statement ran (a claim,
    // maintenance) already sits in libpq's buffer, where poll() cannot see it.
    if (main.session && shutdown.claiming() && timeout > 0 && ReadNotifications()) timeout = 0;
    pollfd fds[4];
    int n = 0;
    fds[n++] = {control.fd(), POLLIN, 0};
    fds[n++] = {executor.completion_fd(), POLLIN, 0};
    fds[n++] = {writer.done_fd(), POLLIN, 0};
    if (main.session && main.session->socket() >= 0) fds[n++] = {main.session->socket(), POLLIN, 0};
    ::poll(fds, n, timeout);
    control.Drain();
  }

  int Run() {
    bool left_unwritten = false;
    executor.Start();
    writer.Start();
    retention.Start({lane_ptrs.begin(), lane_ptrs.end()});
    int exit_code = 0;
    while (true) {
      if (!EnsureConnected()) {
        exit_code = 1;
        break;
      }
      if (stop_requested) shutdown.RequestStop();
      if (drain_requested) shutdown.RequestDrain();
      if (options.heartbeat) options.heartbeat();
      AdoptNewPolicies();
      CollectCompletions();
      MaybeHeartbeat();
      Writes();
      MaybeNotifyOutbox();
      metrics.InFlight(Busy());
      const auto phase_before = shutdown.phase();
      const auto actions = shutdown.Step(clock.Now(), Settled());
      if (!shutdown.claiming()) Status(false, "stopping: draining the requests in flight");
      if (actions.drop_waiting) {
        executor.DropWaiting();  // requests not started yet go back to the database unsent
        spdlog::info("draining: {} request(s) in flight, grace {} ms", Busy(), settings.shutdown_grace.count());
      }
      if (actions.abort_all) {
        if (phase_before == Shutdown::Phase::kDraining) {
          spdlog::warn("grace period over: aborting {} request(s) and releasing their leases", Busy());
        }
        executor.AbortAll();
        for (auto* lane : lane_ptrs) lane->StopSending();
      }
      if (actions.done) {
        if (actions.unwritten) {
          left_unwritten = true;
          spdlog::error("stopping with {} result(s) unwritten (database unreachable); their leases will expire "
                        "and another daemon will retry them",
                        Unwritten() + static_cast<std::size_t>(Busy()));
        }
        break;
      }
      if (shutdown.claiming()) {
        MaybeMaintain();
        MaybeWakeHeld();
        MaybeClaim();
      }
      retention.SetLeader(main.session && maintenance.leader() && shutdown.claiming());
      WaitForWork();
    }
    // Leaving with results unwritten means the database does not answer:
    // no round trip of the exit (the outbox notice, the writer's last try)
    // may wait for it.
    if (left_unwritten) watchdog->Interrupt();
    if (outbox.owed() && !watchdog->interrupted()) {  // do not leave outbox consumers waiting for their next poll
      next_outbox_notify = clock.Now();
      MaybeNotifyOutbox();
    }
    // Whatever the database does, the writer's thread (perhaps waiting for a
    // hung one) is released now: what it could not write is in the log above.
    watchdog->Interrupt();
    retention.Stop();
    writer.Stop();
    executor.Stop();
    spdlog::info("engine stopped");
    return exit_code;
  }
};

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Engine::~Engine() = default;

int Engine::Run() { return impl_->Run(); }

void Engine::Drain() {
  impl_->drain_requested = true;
  impl_->control.Signal();
}

void Engine::ReplacePolicies(std::shared_ptr<const config::PolicySet> policies) {
  {
    std::lock_guard lock(impl_->policies_mu);
    impl_->replacement_policies = std::move(policies);
  }
  impl_->control.Signal();
}

void Engine::Stop() {
  impl_->stop_requested = true;
  // A second SIGTERM: no database round trip may hold the stop.
  impl_->watchdog->Interrupt();
  impl_->control.Signal();
}

}  // namespace pgcourier::engine

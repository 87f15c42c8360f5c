#include "app/app.hpp"
#include "app/logging.hpp"

#include <malloc.h>
#include <poll.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <system_error>
#include <thread>

#include "config/master_key.hpp"
#include "config/policies.hpp"
#include "config/settings.hpp"
#include "engine/engine.hpp"
#include "lanes/deliveries/lane.hpp"
#include "lanes/runs/lane.hpp"
#include "metrics/metrics.hpp"
#include "signing/secret_box.hpp"

namespace pgcourier::app {
namespace {

// How long past shutdown_grace a stop may take before the process leaves anyway.
constexpr std::chrono::milliseconds kHardStopSlack{1000};

constexpr const char* kUsage = R"(usage: pgcourierd [--config FILE] [--policies FILE] [--log-format text|json] [--check-config]
       pgcourierd --version | --help

  --config FILE     YAML settings (database_url, worker_id, concurrency, lease_duration,
                    poll_interval, policies_file, master_key_file, shutdown_grace,
                    metrics_address, log_level, ...)
  --policies FILE   policies file (overrides policies_file)
  --log-format F    text (default) or json: one JSON object per line
  --check-config    validate settings, policies and the master key, print the result, exit 0 or 1
  --version         print the version and exit

Environment: DATABASE_URL (libpq URI; overrides database_url; when both are empty the
libpq variables PGHOST, PGPORT, PGDATABASE, PGUSER... apply), PGCOURIER_MASTER_KEY_FILE,
CREDENTIALS_DIRECTORY (systemd: master-key is read from it when no key file is set).
)";

struct CommandLine {
  std::string config_file;
  std::string policies_file;
  std::string log_format;
  bool check_config = false;
};

std::optional<CommandLine> ParseCommandLine(int argc, char** argv, const char* version) {
  CommandLine cl;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      if (i + 1 >= argc) {
        std::cerr << "pgcourierd: " << name << " needs a value\n";
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    if (arg == "--config") {
      auto v = value("--config");
      if (!v) return std::nullopt;
      cl.config_file = *v;
    } else if (arg == "--policies") {
      auto v = value("--policies");
      if (!v) return std::nullopt;
      cl.policies_file = *v;
    } else if (arg == "--log-format") {
      auto v = value("--log-format");
      if (!v) return std::nullopt;
      cl.log_format = *v;
    } else if (arg == "--check-config") {
      cl.check_config = true;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);  // NOLINT(concurrency-mt-unsafe): argument parsing, before any thread starts
    } else if (arg == "--version") {
      std::cout << "pgcourierd " << version << "\n";
      std::exit(0);  // NOLINT(concurrency-mt-unsafe): argument parsing, before any thread starts
    } else {
      std::cerr << "pgcourierd: unknown argument '" << arg << "'\n" << kUsage;
      return std::nullopt;
    }
  }
  return cl;
}

// strsignal() may use a static buffer (not thread-safe); sigdescr_np() gives the same text from a constant table.
const char* SignalName(std::uint32_t signo) {
  const char* name = sigdescr_np(static_cast<int>(signo));
  return name != nullptr ? name : "a signal";
}

std::string DefaultWorkerId() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host[0] ? host : "pgcourierd") + "-" + std::to_string(getpid());
}

struct LoadedConfig {
  config::Settings settings;
  std::shared_ptr<const config::PolicySet> policies;
  std::shared_ptr<const signing::SecretBox> secret_box;
};

// Throws config::ConfigError / std::runtime_error with every problem found.
LoadedConfig LoadEverything(const CommandLine& cl) {
  LoadedConfig loaded;
  const std::string source = cl.config_file.empty() ? "(defaults)" : cl.config_file;
  if (!cl.config_file.empty()) loaded.settings = config::LoadSettingsFile(cl.config_file);
  if (const char* url = std::getenv("DATABASE_URL"); url && *url) loaded.settings.database_url = url;
  if (!cl.policies_file.empty()) loaded.settings.policies_file = cl.policies_file;
  if (!cl.log_format.empty()) loaded.settings.log_format = cl.log_format;
  if (loaded.settings.worker_id.empty()) loaded.settings.worker_id = DefaultWorkerId();
  config::ValidateSettings(loaded.settings, source);
  loaded.policies = std::make_shared<const config::PolicySet>(config::LoadPoliciesFile(loaded.settings.policies_file));
  const std::string key_path = config::MasterKeyPath(loaded.settings);
  if (!key_path.empty()) {
    loaded.secret_box = std::make_shared<const signing::SecretBox>(signing::SecretBox::FromKeyFile(key_path));
    loaded.settings.master_key_file = key_path;
  }
  return loaded;
}


// SIGHUP: re-reads the settings file and the policies. Policies and the log
// level/format take effect for the next claims; settings that need a restart
// are named. Anything invalid is rejected as a whole and the old configuration
// stays in force.
void Reload(const CommandLine& cl, LoadedConfig& current, engine::Engine& engine, metrics::Metrics* metrics) {
  LoadedConfig fresh;
  try {
    fresh = LoadEverything(cl);
  } catch (const std::exception& e) {
    spdlog::error("reload rejected, the previous configuration stays in force:\n{}", e.what());
    if (metrics) metrics->ConfigReload(false);
    return;
  }
  const auto& a = current.settings;
  const auto& b = fresh.settings;
  std::vector<std::string> needs_restart;
  if (a.database_url != b.database_url) needs_restart.emplace_back("database_url");
  if (a.database_pooler != b.database_pooler) needs_restart.emplace_back("database_pooler");
  if (a.database_direct_url != b.database_direct_url) needs_restart.emplace_back("database_direct_url");
  if (a.database_timeout != b.database_timeout) needs_restart.emplace_back("database_timeout");
  if (a.concurrency != b.concurrency) needs_restart.emplace_back("concurrency");
  if (a.max_claim_batch != b.max_claim_batch) needs_restart.emplace_back("max_claim_batch");
  if (a.metrics_address != b.metrics_address) needs_restart.emplace_back("metrics_address");
  if (a.policies_file != b.policies_file) needs_restart.emplace_back("policies_file");
  if (a.tenants != b.tenants) needs_restart.emplace_back("tenants");
  if (a.master_key_file != b.master_key_file) needs_restart.emplace_back("master_key_file");
  if (!needs_restart.empty()) {
    std::string names;
    for (const auto& n : needs_restart) names += (names.empty() ? "" : ", ") + n;
    spdlog::warn("reload: {} changed; that takes effect after a restart", names);
  }
  ConfigureLogging(b.log_format, b.log_level);
  engine.ReplacePolicies(fresh.policies);
  current.settings.log_level = b.log_level;
  current.settings.log_format = b.log_format;
  current.policies = fresh.policies;
  if (metrics) metrics->ConfigReload(true);
  spdlog::info("reloaded {} policies from {}; log level {}", fresh.policies->all().size(),
               current.settings.policies_file, b.log_level);
}

}  // namespace

int Main(int argc, char** argv, const char* version) {
  // Buffers of 1 MiB and more (large payloads, and the database connection's
  // buffer for them) come from mmap and go back to the system when freed.
  // Otherwise glibc raises its mmap threshold to the largest buffer freed (up
  // to 32 MiB), and from then on every thread's arena keeps such buffers:
  // the memory budget (max_in_flight_bytes) would hold for the payloads in
  // use, but not for the process's resident size.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);  // NOLINT(concurrency-mt-unsafe): before any thread starts
  const auto cl = ParseCommandLine(argc, argv, version);
  if (!cl) return 2;

  LoadedConfig loaded;
  try {
    loaded = LoadEverything(*cl);
  } catch (const std::exception& e) {
    std::cerr << "pgcourierd: configuration is invalid:\n" << e.what() << "\n";
    return 1;
  }
  if (cl->check_config) {
    for (const std::string& notice : loaded.settings.notices) std::cout << "note: " << notice << "\n";
    std::cout << "configuration OK: " << loaded.policies->all().size() << " policies from "
              << loaded.settings.policies_file << "; worker " << loaded.settings.worker_id << "; master key "
              << (loaded.secret_box ? loaded.settings.master_key_file : std::string("not configured")) << "\n";
    return 0;
  }
  ConfigureLogging(loaded.settings.log_format, loaded.settings.log_level);
  for (const std::string& notice : loaded.settings.notices) spdlog::warn("{}", notice);
  if (!loaded.secret_box) {
    spdlog::warn("no master key configured (master_key_file, PGCOURIER_MASTER_KEY_FILE or systemd credential "
                 "'master-key'): deliveries of subscriptions with signing secrets will be held");
  }

  // Block the signals before any thread starts, so every thread inherits the
  // mask and they are only ever received here, through the signalfd.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  const int done_fd = eventfd(0, EFD_CLOEXEC);
  if (signal_fd < 0 || done_fd < 0) {
    spdlog::critical("cannot set up signal handling: {}", std::generic_category().message(errno));
    return 1;
  }

  std::unique_ptr<metrics::Metrics> metrics;
  try {
    metrics = metrics::NewPrometheusMetrics(loaded.settings.metrics_address, version);
    if (!loaded.settings.metrics_address.empty()) {
      spdlog::info("serving /metrics on {} (port {})", loaded.settings.metrics_address, metrics->bound_address());
    }
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }

  engine::EngineOptions options;
  options.settings = loaded.settings;
  options.policies = loaded.policies;
  options.secret_box = loaded.secret_box;
  options.metrics = metrics.get();
  options.lanes = {lanes::NewDeliveryLane, lanes::NewRunLane};
  options.on_ready = [] { sd_notify(0, "READY=1\nSTATUS=delivering"); };
  // `systemctl status` shows why the daemon is not delivering (the database is unreachable, it drains).
  options.on_status = [](bool, const std::string& reason) { sd_notifyf(0, "STATUS=%s", reason.c_str()); };
  // systemd watchdog: the engine's loop proves it is alive (at most twice per WatchdogSec).
  std::uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    options.heartbeat_interval = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::microseconds(watchdog_usec / 4));
    options.heartbeat = [interval = std::chrono::microseconds(watchdog_usec / 2),
                         last = std::chrono::steady_clock::time_point{}]() mutable {
      const auto now = std::chrono::steady_clock::now();
      if (now - last >= interval) {
        sd_notify(0, "WATCHDOG=1");
        last = now;
      }
    };
  }
  engine::Engine engine(std::move(options));

  spdlog::info("pgcourierd {} starting as worker {} (policies {})", version, loaded.settings.worker_id,
               loaded.settings.policies_file);
  int exit_code = 0;
  std::thread engine_thread([&] {
    exit_code = engine.Run();
    const std::uint64_t one = 1;
    (void)!write(done_fd, &one, sizeof one);
  });

  int terminations = 0;
  // The last resort of a stop: the engine ends within shutdown_grace by
  // itself, but a round trip that cannot be interrupted (a connection attempt
  // to a database that does not answer) must not hold the process. Nothing is
  // lost by leaving: what was not written is still leased in the database.
  std::optional<std::chrono::steady_clock::time_point> hard_deadline;
  while (true) {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {done_fd, POLLIN, 0}};
    int timeout_ms = -1;
    if (hard_deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*hard_deadline -
                                                                              std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        spdlog::critical("still stopping {} ms after SIGTERM (shutdown_grace {} ms): exiting now; work not written "
                         "back is still leased in the database and returns when the leases expire",
                         loaded.settings.shutdown_grace.count() + kHardStopSlack.count(),
                         loaded.settings.shutdown_grace.count());
        spdlog::shutdown();
        std::_Exit(1);
      }
      timeout_ms = static_cast<int>(left.count());
    }
    if (poll(fds, 2, timeout_ms) <= 0) continue;
    if (fds[1].revents & POLLIN) break;
    if (!(fds[0].revents & POLLIN)) continue;
    signalfd_siginfo info{};
    if (read(signal_fd, &info, sizeof info) != sizeof info) continue;
    if (info.ssi_signo == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      Reload(*cl, loaded, engine, metrics.get());
      sd_notify(0, "READY=1");
      continue;
    }
    ++terminations;
    if (terminations == 1) {
      spdlog::info("received {}: draining (send it again to stop at once)", SignalName(info.ssi_signo));
      hard_deadline = std::chrono::steady_clock::now() + loaded.settings.shutdown_grace + kHardStopSlack;
      sd_notify(0, "STOPPING=1");
      engine.Drain();
    } else {
      spdlog::warn("received {} again: stopping now", SignalName(info.ssi_signo));
      engine.Stop();
    }
  }
  engine_thread.join();
  close(signal_fd);
  close(done_fd);
  spdlog::info("pgcourierd stopped (exit {})", exit_code);
  return exit_code;
}

}  // namespace pgcourier::app

// pgcourier-gateway: argv -> settings -> the HTTP server -> wait for a signal.
//
//   pgcourier-gateway --listen 127.0.0.1:8080 [--config FILE] [options]
//
// --config is pgcourierd's settings file (the same database_url and
// master_key_file; the daemon-only keys are ignored here), then DATABASE_URL
// and the libpq variables, then PGCOURIER_MASTER_KEY_FILE or systemd's
// $CREDENTIALS_DIRECTORY/master-key, exactly as the daemon reads them
// (config/settings.hpp, config/master_key.hpp). With a shard map (--shard-map,
// else PGCOURIER_SHARD_MAP) the databases are the map's shards instead, one
// pool each (shards.hpp). The URLs the API is given are checked against the
// policies file (--policies, else PGCOURIER_POLICIES_FILE, else the settings'
// policies_file; api/url_check.hpp). Signals are blocked before any thread
// starts and taken with sigwait on this thread: SIGTERM or SIGINT stop the
// server (civetweb finishes the requests in progress), SIGHUP re-reads the
// policies file.
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "api/api.hpp"
#include "app/logging.hpp"
#include "base/file.hpp"
#include "config/master_key.hpp"
#include "config/policies.hpp"
#include "config/settings.hpp"
#include "config/shard_map.hpp"
#include "router.hpp"
#include "server.hpp"
#include "shards.hpp"
#include "store/migrations.hpp"

namespace {

using namespace pgcourier;

constexpr const char* kUsage = R"(usage: pgcourier-gateway [--listen HOST:PORT] [--config FILE] [options]

The HTTP API, operator console and probes of pgcourier (README: Gateway).

  --listen HOST:PORT        where to listen (default 127.0.0.1:8080)
  --config FILE             pgcourierd's settings file: database_url, master_key_file, log_level, log_format
  --shard-map FILE          tenants spread over several databases: the shard map (default: PGCOURIER_SHARD_MAP);
                            one pool per shard, each request goes to the shard that stores its API token or
                            ingress source; database_url and DATABASE_URL are then not used (README: Tenant shards)
  --policies FILE           the policies whose endpoint rules API URLs are checked against, as the daemon
                            applies them (default: PGCOURIER_POLICIES_FILE, else policies_file of --config's
                            settings, /etc/pgcourier/policies.yaml); '' checks their syntax only; SIGHUP re-reads it
  --tls-certificate FILE    serve HTTPS; FILE holds the PEM certificate (chain) and its private key
  --threads N               worker threads, one connection each (default 8)
  --pool-size N             database connections, per shard with a shard map (default: --threads)
  --statement-timeout-ms N  deadline of every database statement (default 5000)
  --request-timeout-ms N    the whole time a request may take to arrive (default 10000)
  --max-body-bytes N        larger request bodies are refused with 413 (default 1048576)
  --rate-limit R            requests per second per API token (default 50)
  --rate-burst N            burst per API token (default 100)
  --ingress-rate-limit R    requests per second per ingress source (default 100)
  --ingress-rate-burst N    burst per ingress source (default 200)
  --openapi FILE            the OpenAPI document to serve (default: the one built in)
  --version, --help

Environment: DATABASE_URL (overrides database_url; when both are empty the libpq
variables PGHOST, PGPORT, PGDATABASE, PGUSER... apply), PGCOURIER_SHARD_MAP, PGCOURIER_POLICIES_FILE,
PGCOURIER_MASTER_KEY_FILE,
CREDENTIALS_DIRECTORY (systemd: master-key is read from it when no key file is set).
)";

struct CommandLine {
  std::string listen = "127.0.0.1:8080";
  std::string config_file;
  std::optional<std::string> shard_map_file;  // the option; nullopt: PGCOURIER_SHARD_MAP decides
  std::optional<std::string> policies_file;   // the option; nullopt: PGCOURIER_POLICIES_FILE, then the settings
  std::string tls_certificate;
  std::string openapi_file;
  int threads = 8;
  int pool_size = 0;
  int statement_timeout_ms = 5000;
  int request_timeout_ms = 10000;
  long long max_body_bytes = 1 << 20;
  double rate_limit = 50;
  double rate_burst = 100;
  double ingress_rate_limit = 100;
  double ingress_rate_burst = 200;
};

long long Number(const std::string& option, const std::string& text, long long min, long long max) {
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < min || value > max) {
    throw std::invalid_argument(option + " takes a whole number from " + std::to_string(min) + " to " +
                                std::to_string(max));
  }
  return value;
}

CommandLine Parse(const std::vector<std::string>& args, bool& exit_now) {
  CommandLine cl;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::string value;
    bool has_value = false;
    if (const auto eq = name.find('='); name.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    if (name == "--help" || name == "-h") {
      std::cout << kUsage;
      exit_now = true;
      return cl;
    }
    if (name == "--version") {
      std::cout << "pgcourier-gateway " << PGCOURIER_VERSION << "\n";
      exit_now = true;
      return cl;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) throw std::invalid_argument(name + " needs a value (--help)");
      value = args[++i];
    }
    if (name == "--listen") cl.listen = value;
    else if (name == "--config") cl.config_file = value;
    else if (name == "--shard-map") cl.shard_map_file = value;
    else if (name == "--policies") cl.policies_file = value;
    else if (name == "--tls-certificate") cl.tls_certificate = value;
    else if (name == "--openapi") cl.openapi_file = value;
    else if (name == "--threads") cl.threads = static_cast<int>(Number(name, value, 1, 512));
    else if (name == "--pool-size") cl.pool_size = static_cast<int>(Number(name, value, 1, 512));
    else if (name == "--statement-timeout-ms") cl.statement_timeout_ms = static_cast<int>(Number(name, value, 1, 600000));
    else if (name == "--request-timeout-ms") cl.request_timeout_ms = static_cast<int>(Number(name, value, 100, 600000));
    else if (name == "--max-body-bytes") cl.max_body_bytes = Number(name, value, 1024, 64LL << 20);
    else if (name == "--rate-limit") cl.rate_limit = static_cast<double>(Number(name, value, 1, 1000000));
    else if (name == "--rate-burst") cl.rate_burst = static_cast<double>(Number(name, value, 1, 1000000));
    else if (name == "--ingress-rate-limit") cl.ingress_rate_limit = static_cast<double>(Number(name, value, 1, 1000000));
    else if (name == "--ingress-rate-burst") cl.ingress_rate_burst = static_cast<double>(Number(name, value, 1, 1000000));
    else throw std::invalid_argument("unknown option " + name + " (--help)");
  }
  if (cl.listen.find(':') == std::string::npos) throw std::invalid_argument("--listen takes HOST:PORT");
  if (cl.pool_size == 0) cl.pool_size = cl.threads;
  return cl;
}

std::string ReadOpenApi(const std::string& path) {
  if (path.empty()) return gateway::kOpenApiDocument;
  base::ReadOptions options;
  options.max_bytes = std::size_t{4} << 20;
  return base::ReadSmallFile(path, options);
}

}  // namespace

int main(int argc, char** argv) {
  bool exit_now = false;
  CommandLine cl;
  config::Settings settings;
  std::optional<config::ShardMap> shard_map;
  std::string shard_map_file;
  try {
    cl = Parse(std::vector<std::string>(argv + 1, argv + argc), exit_now);
    if (exit_now) return 0;
    if (!cl.config_file.empty()) settings = config::LoadSettingsFile(cl.config_file);
    // As pgcourierctl: the option, else the environment; empty means none.
    const char* env_map = std::getenv("PGCOURIER_SHARD_MAP");
    shard_map_file = cl.shard_map_file.value_or(env_map ? env_map : "");
    if (!shard_map_file.empty()) shard_map = config::LoadShardMapFile(shard_map_file);
  } catch (const std::exception& e) {
    std::cerr << "pgcourier-gateway: " << e.what() << "\n";
    return 2;
  }
  if (const char* url = std::getenv("DATABASE_URL"); url && *url) settings.database_url = url;
  app::ConfigureLogging(settings.log_format, settings.log_level);

  // Before any thread starts, so every thread inherits the mask and only sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<signing::SecretBox> master_key;
  try {
    if (const auto path = config::MasterKeyPath(settings); !path.empty()) {
      master_key = std::make_unique<signing::SecretBox>(signing::SecretBox::FromKeyFile(path));
    } else {
      spdlog::warn("no master key configured (master_key_file, PGCOURIER_MASTER_KEY_FILE or systemd credential "
                   "master-key): creating subscriptions and rotating their secrets answer 503");
    }
    gateway::ApiOptions api_options;
    api_options.rate_per_second = cl.rate_limit;
    api_options.rate_burst = cl.rate_burst;
    const auto& migrations = store::EmbeddedMigrations();
    api_options.required_schema_version = migrations.empty() ? 0 : migrations.back().version;
    api_options.openapi_document = ReadOpenApi(cl.openapi_file);

    store::api::PoolOptions pool_options;
    pool_options.database_url = settings.database_url;
    pool_options.size = cl.pool_size;
    pool_options.statement_timeout = std::chrono::milliseconds(cl.statement_timeout_ms);
    if (shard_map) {
      std::string names;
      for (const auto& [name, url] : shard_map->shards) names += (names.empty() ? "" : ", ") + name;
      spdlog::info("shard map {}: shards {} (database_url and DATABASE_URL are not used)", shard_map_file, names);
    }
    gateway::Shards shards(std::move(shard_map), pool_options);
    const char* env_policies = std::getenv("PGCOURIER_POLICIES_FILE");
    gateway::UrlCheck urls(cl.policies_file.value_or(env_policies ? env_policies : settings.policies_file));
    gateway::Api api(api_options, shards, master_key.get(), urls);
    gateway::ingress::IngressOptions ingress_options;
    ingress_options.rate_per_second = cl.ingress_rate_limit;
    ingress_options.rate_burst = cl.ingress_rate_burst;
    gateway::ingress::Ingress ingress(ingress_options, shards, master_key.get());
    gateway::console::Console console(api, master_key.get(), !cl.tls_certificate.empty());
    gateway::Router router(api, ingress, console);

    gateway::ServerOptions server_options;
    server_options.listen = cl.listen;
    server_options.tls_certificate = cl.tls_certificate;
    server_options.threads = cl.threads;
    server_options.request_timeout_ms = cl.request_timeout_ms;
    server_options.max_body_bytes = cl.max_body_bytes;
    gateway::Server server(server_options, [&](const gateway::Request& r) { return router.Handle(r); });
    server.Start();
    spdlog::info("pgcourier-gateway {} listening on {}{} (schema version {})", PGCOURIER_VERSION, cl.listen,
                 cl.tls_certificate.empty() ? "" : " (TLS)", api_options.required_schema_version);
    for (;;) {
      int signo = 0;
      sigwait(&signals, &signo);
      if (signo == SIGTERM || signo == SIGINT) {
        spdlog::info("stopping ({})", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
      }
      if (signo == SIGHUP) urls.Reload();
    }
    server.Stop();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}

// Daemon settings: YAML file, then environment overrides, then command line.
// Plain struct with defaults; Validate-on-load. Not synchronised.
#pragma once

#include <string>
#include <vector>

#include "model/policy.hpp"

namespace pgcourier::config {

struct Settings {
  std::string database_url;       // libpq URI or key=value; empty = libpq environment (PGHOST...)
  // Through a connection pooler (pgbouncer): "none" (direct, or a pooler in
  // session mode: nothing changes), or "transaction": statements are sent
  // unprepared and without session settings, and the session that LISTENs,
  // holds the maintenance lock and claims connects to database_direct_url.
  std::string database_pooler = "none";
  std::string database_direct_url;  // the direct URL for database_pooler: transaction
  std::string worker_id;          // default: hostname-pid
  int concurrency = 256;          // max HTTP requests in flight
  int max_claim_batch = 256;      // max deliveries claimed per round trip
  // Memory: payload bytes of one claim, and of every delivery held at once
  // (in flight or waiting to be written). Payloads are measured at publish.
  int max_claim_bytes = 8 << 20;
  int max_in_flight_bytes = 64 << 20;
  // A claimed delivery's or run's lease: renewed every third of it while its
  // request is in flight (the heartbeat), so a killed daemon's work is taken
  // back within lease_duration + rescue_interval, whatever the request timeout.
  model::Millis lease_duration{15000};
  // A database round trip that takes longer than this means the database is
  // hung (a stopped server, a partition): the connection is dropped and
  // re-established, results are kept in memory meanwhile. Also the server's
  // statement_timeout for the daemon's statements (less 20 %), and the
  // bound of TCP keepalives and tcp_user_timeout (store/session.hpp).
  model::Millis database_timeout{15000};
  model::Millis poll_interval{1000};   // fallback poll when no NOTIFY arrives (jittered)
  model::Millis rescue_interval{5000}; // how often expired leases are looked for
  model::Millis shutdown_grace{25000}; // SIGTERM: time to let in-flight requests finish
  std::string policies_file = "/etc/pgcourier/policies.yaml";
  std::string master_key_file;    // empty: $CREDENTIALS_DIRECTORY/master-key if set
  std::string metrics_address = "127.0.0.1:9464";  // empty disables /metrics; port 0 = ephemeral
  std::string log_level = "info"; // trace, debug, info, warn, error
  std::string log_format = "text"; // text, or json (one JSON object per line)
  // Maintenance (one daemon at a time, elected with an advisory lock):
  model::Millis maintenance_interval{5000};          // queue depth refresh, lease rescue cadence
  model::Millis retention_completed{7LL * 24 * 3600 * 1000};       // delivered/failed kept this long
  model::Millis retention_dead_lettered{30LL * 24 * 3600 * 1000};  // dead letters kept longer
  // Credentials whose active version expires within this window are counted
  // in pgcourier_credentials_expiring (and listed by courier.credential_expiry).
  model::Millis credential_expiry_warning{7LL * 24 * 3600 * 1000};
  // Outbox events for deliveries (WebhookDelivered, WebhookFailed,
  // WebhookDeadLettered) and failures rows for deliveries that end failed or
  // dead-lettered: all, failures (no WebhookDelivered), or none.
  std::string delivery_events = "all";
  std::vector<std::string> tenants;  // serve only these tenants; empty = all
  std::string user_agent = "pgcourier/0.1";
  // Settings of earlier versions that are accepted but no longer used: one
  // sentence each (where, and what replaced it), logged at start-up.
  std::vector<std::string> notices;
};

// Parses YAML text (source used in messages). Unknown keys and wrong types are
// errors. Throws ConfigError (from policies.hpp).
Settings ParseSettings(const std::string& yaml_text, const std::string& source);
Settings LoadSettingsFile(const std::string& path);
// Checks ranges (concurrency 1..100000, batch 1..10000, durations > 0, ...).
// Throws ConfigError listing every problem; `source` prefixes the messages.
void ValidateSettings(const Settings& settings, const std::string& source);

}  // namespace pgcourier::config

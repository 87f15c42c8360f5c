// Plain data for integration runs as they move between store/ and lanes/:
// connections, claimed runs, their outcomes, health probes and credential
// rotations. No third-party includes. Value types; not synchronised.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/delivery.hpp"

namespace pgcourier::model {

enum class RunStatus { kPending, kRunning, kCompleted, kFailed, kDeadLettered };
std::string_view ToString(RunStatus status);

// What happens after a failed attempt (courier.failures.next_action).
enum class NextAction { kNone, kRetry, kDeadLetter, kEscalate };
std::string_view ToString(NextAction action);  // "" for kNone

// A connection as the daemon needs it to call the vendor, with the secret of
// its credential's active (or, for a rotation, candidate) version, sealed.
struct Connection {
  std::string id;
  std::string tenant_id;
  std::string status;          // pending, active, degraded, retired
  std::string base_url;
  std::string auth_mode;       // none, api_key, bearer, basic, oauth2_client_credentials
  std::string api_key_header;  // api_key: header name (empty: X-Api-Key)
  std::string token_url;       // oauth2
  std::string client_id;
  std::string scopes;
  std::string policy_name;
  int max_in_flight = 0;       // 0 = the policy's
  double rate_per_second = 0;
  int rate_burst = 0;
  std::string credential_id;
  int credential_version = 0;  // 0 = no usable version
  std::string sealed_secret;   // SecretBox text, associated data = credential_id
  std::string health_check_method;  // empty: no health check
  std::string health_check_path;
  int health_check_expected_status = 0;  // 0 = any 2xx
};

// A run claimed by this worker (status 'running', lease held).
struct ClaimedRun {
  std::string id;
  std::string tenant_id;
  std::string connection_id;
  std::string operation;
  std::string method;
  std::string path;
  std::string headers_json;    // the run's non-secret headers, a JSON object
  std::optional<std::string> body;
  std::string idempotency_key;
  std::string external_ref_pointer;
  std::string trace_id;
  std::string last_error_code;  // of the previous attempt ("auth_refresh" after a token refresh)
  int previous_attempts = 0;
  int rate_limited_attempts = 0;
  int attempt_budget_base = 0;
  bool connection_found = false;
  // > 0: the connection's provider had no token in its shared budget; wait this long.
  long long provider_wait_ms = 0;
  std::string provider_key;  // the connection's registered provider, "" when none
  Connection connection;
  int Attempt() const { return previous_attempts + 1; }
};

// A credential rotation this daemon must run the command of (rotation policies).
struct DueRotation {
  std::string credential_id;
  std::string tenant_id;
  std::string command;  // an absolute path, run without a shell
};

struct RunOutcome : AttemptRecord {
  std::string run_id;
  RunStatus next_status = RunStatus::kPending;  // kPending: retry_delay_ms is set
  std::string error_code;      // e.g. "http_503", "auth_refresh", "unknown_connection"
  std::string external_ref;
  NextAction next_action = NextAction::kNone;
  int credential_version = 0;
};

// A connection whose health check is due (or may be: the daemon decides by
// its policy's interval).
struct ProbeTarget {
  Connection connection;
  std::int64_t since_last_check_ms = -1;  // -1: never checked
};

// A credential version waiting for its verification call.
struct PendingRotation {
  std::string version_id;
  int version = 0;
  std::string credential_id;
  std::string tenant_id;
  std::optional<Connection> connection;  // one using the credential (with the candidate secret); none: promote
};

}  // namespace pgcourier::model

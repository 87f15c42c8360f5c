// admin::Runs: integration runs for the operator: enqueue
// (courier.enqueue_run), list, show with attempts and failures, replay
// (courier.replay_run). Borrows an admin::Connection; not thread-safe.
// Throws StoreError.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/admin/connections.hpp"

namespace pgcourier::store::admin {

// Arguments of courier.enqueue_run(); empty ones take the function's defaults.
struct NewRun {
  std::string tenant_id;
  std::string connection_id;
  std::string operation;
  std::string method;
  std::string path;
  std::string body;
  std::string headers_json;
  std::string idempotency_key;
  std::string trace_id;
  std::string external_ref_pointer;
};

struct EnqueuedRun {
  std::string id;
  bool created = false;                      // false: the idempotency key named an earlier run
  std::optional<ConnectionInfo> connection;  // nullopt: no such connection (the run is poison)
};

// A run of courier.run_status, with its idempotency key and external_ref pointer.
struct RunInfo {
  std::string id;
  std::string tenant_id;
  std::string connection_id;
  std::string provider;  // empty: no such connection
  std::string operation;
  std::string method;
  std::string path;
  std::string status;
  int attempts = 0;
  std::string next_attempt_at;
  std::string lease_owner;
  std::string lease_expires_at;
  std::string external_ref;
  std::optional<int> last_status_code;
  std::string last_error;
  std::string last_error_code;
  std::string trace_id;
  std::string created_at;
  std::string started_at;
  std::string completed_at;
  std::optional<double> latency_ms;  // to 0.1 ms
  std::string waiting_for;  // "connection degraded/unknown" while its connection holds it
  std::string idempotency_key;
  std::string external_ref_pointer;
};

// A row of courier.failures.
struct FailureInfo {
  std::string id;
  std::string created_at;
  std::string category;
  std::string error_code;
  std::string message;
  std::optional<int> attempt;
  std::string next_action;
  std::string resolved_at;  // empty: open
  std::string resolution;
  long long escalations = 0;
};

struct RunDetail {
  RunInfo run;
  std::vector<AttemptInfo> timeline;  // by attempt number
  std::vector<FailureInfo> failures;  // oldest first
};

struct RunFilter {
  std::string tenant_id;  // empty: every tenant
  std::string status;     // empty: every status
  int limit = 50;         // the most recent ones
};

// A run that courier.replay_run() was asked to replay.
struct RunReplay {
  std::string previous_status;
  bool replayed = false;  // false: it was pending or running, nothing to replay
};

class Runs {
 public:
  explicit Runs(Connection& connection) : connection_(connection) {}

  EnqueuedRun Enqueue(const NewRun& run);
  std::vector<RunInfo> List(const RunFilter& filter);  // newest first
  std::optional<RunDetail> Show(const std::string& id);
  // courier.replay_run(); its refusals (no such run, completed) throw
  // StoreError with the database's message.
  RunReplay Replay(const std::string& id);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin

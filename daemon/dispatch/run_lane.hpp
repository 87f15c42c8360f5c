// RunLane: integration runs inside the dispatcher's loop. It shares the
// dispatcher's database connection, HTTP executor, request slots and batched
// writes (one engine, two kinds of work):
//
//   claim due runs (never more than free slots) -> poison check -> limits
//     -> credential (opened from its sealed version; OAuth2 token from the
//        in-memory cache, fetched through the same executor when missing)
//     -> executor -> completion -> classify / decide -> batched write
//
// As maintenance leader it also probes connections' health checks, verifies
// rotated credentials, rescues expired run leases and refreshes run metrics.
//
// Threading: used only on the dispatcher's thread. Store errors propagate as
// store::StoreError; unwritten results stay queued for the next Flush.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/policies.hpp"
#include "config/settings.hpp"
#include "http/executor.hpp"

namespace pgcourier::metrics {
class Metrics;
}
namespace pgcourier::signing {
class SecretBox;
}
namespace pgcourier::store {
class Store;
}

namespace pgcourier::dispatch {

struct RunLaneContext {
  const config::Settings* settings = nullptr;
  http::Executor* executor = nullptr;
  std::shared_ptr<const signing::SecretBox> secret_box;  // may be null: runs with credentials are held
  metrics::Metrics* metrics = nullptr;                    // may be null
  std::function<std::uint64_t()> next_token;              // executor tokens, unique across lanes
  std::function<double()> random;                         // uniform [0, 1)
  std::function<std::shared_ptr<const netguard::EndpointRules>(const model::Policy&)> rules_for;
};

class RunLane {
 public:
  explicit RunLane(RunLaneContext context);
  ~RunLane();
  RunLane(const RunLane&) = delete;
  RunLane& operator=(const RunLane&) = delete;

  // Claims up to `free_slots` due runs and starts them. Returns how many were claimed.
  int Claim(store::Store& store, int free_slots, std::chrono::milliseconds lease,
            const std::shared_ptr<const config::PolicySet>& policies);
  // Takes a completion if its token is one of this lane's; false otherwise.
  bool Complete(http::Completion& completion);
  // Writes outcomes, releases, connection marks, probe and rotation results.
  void Flush(store::Store& store);
  // Leader work, at the maintenance cadence.
  void Maintain(store::Store& store, const std::shared_ptr<const config::PolicySet>& policies, bool refresh_metrics);
  // Leader work, at the rescue cadence.
  int RescueExpired(store::Store& store, const std::shared_ptr<const config::PolicySet>& policies);
  int Prune(store::Store& store, int batch);

  // After the executor was told to abort: requests that would start later
  // (a run or probe whose token just arrived) are released instead.
  void StopSending();

  // Requests in flight plus runs waiting for a token: slots this lane holds.
  int busy() const;
  bool has_unwritten() const;
  // The last claim filled its limit: more runs are probably due.
  bool backlog() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgcourier::dispatch

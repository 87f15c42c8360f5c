// What every lane is given by the composition root: the settings, the
// executor, the clock, metrics, the master key, the current policies and the
// engine's outbox wake-up. All of it lives longer than the lanes.
// Threading: the engine's thread (the executor's Submit is thread-safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "base/clock.hpp"
#include "config/policies.hpp"
#include "config/settings.hpp"
#include "http/executor.hpp"
#include "metrics/metrics.hpp"
#include "netguard/address_policy.hpp"

namespace pgcourier::signing {
class SecretBox;
}

namespace pgcourier::lanes {

// The policies in force (replaced on SIGHUP by the engine) and what is
// compiled from them: endpoint rules per policy.
class Policies {
 public:
  explicit Policies(std::shared_ptr<const config::PolicySet> policies);

  const std::shared_ptr<const config::PolicySet>& current() const { return current_; }
  void Replace(std::shared_ptr<const config::PolicySet> policies);
  // The compiled endpoint rules of `policy`. Only the current policies' are
  // cached: a request started under replaced policies gets its own.
  std::shared_ptr<const netguard::EndpointRules> RulesFor(const model::Policy& policy);

 private:
  std::shared_ptr<const config::PolicySet> current_;
  std::unordered_map<std::string, std::shared_ptr<const netguard::EndpointRules>> rules_;
};

// The coalesced NOTIFY courier_outbox: lanes whose writes defer the NOTIFY
// (the delivery outcome statement) say Owe(); the engine sends one, at most
// every 100 ms.
class OutboxNotifier {
 public:
  void Owe() { owed_ = true; }
  bool owed() const { return owed_; }
  void Sent() { owed_ = false; }

 private:
  bool owed_ = false;
};

struct LaneContext {
  const config::Settings& settings;
  http::Transport& executor;
  const base::Clock& clock;
  metrics::Metrics& metrics;
  std::shared_ptr<const signing::SecretBox> secret_box;  // may be null: signed or credentialed work is held
  Policies& policies;
  OutboxNotifier& outbox;
  std::function<std::uint64_t()> next_token;  // executor tokens, unique across lanes
  std::function<double()> random;             // uniform [0, 1)
};

}  // namespace pgcourier::lanes

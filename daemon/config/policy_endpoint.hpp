// The `endpoint:` section of a policy (SSRF rules and controlled egress,
// README "Endpoint safety"): require_https, allow_cidrs, allow_hosts,
// allow_only_hosts, proxy and the proxy's credentials (from a file or an
// environment variable; messages name the source, never its content).
// Internal to daemon/config/ (policies.cpp); no shared state.
#pragma once

#include "config/yaml_support.hpp"
#include "model/policy.hpp"

namespace pgcourier::config::detail {

// Reads `section` (a mapping or nothing) into policy.endpoint; problems go to `reporter`.
void ParseEndpoint(const Entry& section, model::Policy& policy, Reporter& reporter);

}  // namespace pgcourier::config::detail

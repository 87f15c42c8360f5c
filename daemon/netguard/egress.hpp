// Controlled egress: the policy's `endpoint` block turned into EndpointRules
// (address_policy.hpp), and the syntax of the two egress keys: the entries of
// allow_only_hosts and the egress proxy's URL. config/ validates a policies
// file with these functions; lanes/ compiles each policy's rules once with
// CompileEndpointRules, so a new endpoint key is added here, not in the lanes.
//
// Pure functions; thread-safe. The proxy's credentials are copied into the
// compiled rules as they are: nothing here logs or formats them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/policy.hpp"
#include "netguard/address_policy.hpp"

namespace pgcourier::netguard {

// Why `entry` cannot be an allow_only_hosts entry, or nullopt. Accepted: a
// host name ("api.vendor.example"), "*." + a host name ("*.vendor.example":
// every name with at least one more label), or an IP address written plainly
// (a dotted quad without leading zeros, or IPv6 with or without brackets).
// Internationalized names must be given in their IDNA ASCII form
// ("xn--bcher-kva.example"), as URLs reach the checks in that form only.
std::optional<std::string> AllowOnlyEntryProblem(std::string_view entry);

// An egress proxy URL: "http://HOST:PORT" with an optional trailing "/".
// HOST is a host name, a dotted quad or a bracketed IPv6 address; PORT is
// required (1..65535). Returns the canonical proxy (lower-case host, no
// trailing slash, no credentials) or, in `problem`, why not. The message
// never repeats a URL that carries credentials ("http://user:pass@...").
std::optional<EgressProxy> ParseProxyUrl(std::string_view text, std::string& problem);

// The rules of one policy's endpoint block. Entries were validated at load;
// an invalid one (only possible for hand-built policies) is left out, and for
// allow_only_hosts that can only narrow what is allowed.
EndpointRules CompileEndpointRules(const model::Policy::Endpoint& endpoint);

}  // namespace pgcourier::netguard

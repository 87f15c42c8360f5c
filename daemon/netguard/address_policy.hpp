// Endpoint safety (SSRF protection): decides whether a webhook URL's scheme and
// host, and later each address its host name resolves to, may be contacted.
// Without it a tenant could point a webhook at 127.0.0.1, at 169.254.169.254
// (cloud metadata), at the private network, or at the same addresses disguised
// as "2130706433", "0x7f.1" or "::ffff:7f00:1".
//
// Use in two steps:
//   1. CheckUrlTarget(scheme, host, rules) before anything else. IP literals are
//      decided here; host names are only checked for syntax.
//   2. CheckConnectAddress(address, host, rules) for every address actually about
//      to be connected to (after DNS, e.g. from curl's open-socket callback, so
//      that DNS rebinding cannot slip an internal address in).
//
// Pure: no DNS, no sockets, no global state. Every function is thread-safe;
// EndpointRules and Cidr are plain values, immutable after construction (share
// them between threads freely as long as nobody modifies them).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netguard/ip_address.hpp"

namespace pgcourier::netguard {

// Why `address` may not be contacted, or nullopt if it is globally reachable.
// Covers IANA's IPv4 and IPv6 special-purpose address registries (following their
// "globally reachable" column, e.g. 192.0.0.9/32 and 2001:1::1/128 are global)
// plus multicast, 240.0.0.0/4 and everything outside IPv6 global unicast
// (2000::/3). Examples: "loopback (127.0.0.0/8)", "private (10.0.0.0/8)",
// "link-local (169.254.0.0/16, includes cloud metadata)", "IPv6 loopback (::1)",
// "IPv4-mapped (::ffff:0:0/96) embedding 127.0.0.1, which is loopback (127.0.0.0/8)".
// Addresses embedding IPv4 are judged by the embedded address: IPv4-mapped and
// NAT64 (64:ff9b::/96) are global when it is; deprecated IPv4-compatible
// (::a.b.c.d), 6to4 (2002::/16) and Teredo (2001::/32) are always blocked.
// An AF_UNSPEC or unknown family gives a reason too.
std::optional<std::string> NonGlobalReason(const IpAddress& address);

// The egress proxy of a policy (netguard/egress.hpp parses and compiles it;
// http/ connects through it). Plain value; never logged (it holds credentials).
struct EgressProxy {
  std::string url;   // "http://host:port", canonical, never with credentials
  std::string host;  // lower-case name, dotted quad, or bracketed IPv6
  int port = 0;
  // Basic proxy credentials, from a file or the environment (never from the
  // policies YAML). Empty user: none.
  std::string user;
  std::string password;
  bool enabled() const { return !host.empty(); }
};

struct EndpointRules {
  bool require_https = true;
  // Explicitly allowed even if not global (e.g. 127.0.0.0/8 for tests). An IPv4
  // block also admits the IPv4-mapped form (::ffff:a.b.c.d) of its addresses.
  std::vector<Cidr> allow_cidrs;
  // Host names whose resolved addresses are allowed even if not global: exact
  // ("localhost") or "*.example.internal", which matches any name with at least
  // one more label ("a.example.internal", "a.b.example.internal") but not
  // "example.internal" itself. Compared case-insensitively, a trailing dot
  // ignored. Applies to names only; allow IP literals with allow_cidrs.
  std::vector<std::string> allow_hosts;
  // Controlled egress (allow_only_hosts): when true, the URL's host must match
  // one of these or the destination is refused before anything is sent,
  // globally reachable ones included. Names and "*.suffix" patterns match
  // exactly as allow_hosts does (and only host names); addresses match an IP
  // literal host however it is spelled ("0x7f.1" matches 127.0.0.1; an
  // IPv4-mapped literal matches its IPv4 address). This only narrows: the
  // address rules above still apply to whatever passes.
  bool allow_only = false;
  std::vector<std::string> allow_only_hosts;
  std::vector<IpAddress> allow_only_addresses;
  // Every request of the policy goes through this proxy when enabled(); see
  // http/executor.hpp for which checks then apply where.
  EgressProxy proxy;
};

// True if `host` is a syntactically valid ASCII host name (letters, digits,
// '-', '_', labels of 1..63, total <= 253; case-insensitive, one trailing dot
// allowed). IP literals in dotted form are also "valid names" here; callers
// that care try ParseIpLiteral first.
bool IsHostName(std::string_view host);

// Decision for the URL's scheme and host before connecting. `host` is as in the
// URL, without port: a name, an IP literal in any form ParseIpLiteral accepts,
// or a bracketed IPv6 literal. Host names are only checked for syntax (ASCII
// letters, digits, '-', '_', labels of 1..63, total <= 253; IDNs must be in
// punycode); their addresses are for CheckConnectAddress. nullopt when allowed,
// otherwise the reason:
//   "https is required by the policy"
//   "scheme \"ftp\" is not allowed; only http and https are"
//   "the URL has no host"
//   "<host> is not a valid host name" (includes zone ids, '%', spaces, ports)
//   "<host> is <reason>; not in the policy's allow list"
//     where <host> is followed by the canonical address when they differ:
//     "0x7f.1 (127.0.0.1) is loopback (127.0.0.0/8); not in the policy's allow list"
//   "<host> is not in the policy's allow_only_hosts" (rules.allow_only)
// Untrusted text is quoted with non-printable bytes escaped and long text cut.
std::optional<std::string> CheckUrlTarget(std::string_view scheme, std::string_view host, const EndpointRules& rules);

// Decision for the exact address about to be connected to (after DNS) for URL
// host `host` (may be empty or an IP literal): allowed if global, or inside
// allow_cidrs, or `host` is a name matching allow_hosts. nullopt when allowed,
// otherwise the reason naming the address and the rule:
//   "address 10.0.0.5 of example.com is private (10.0.0.0/8); not in the policy's allow list"
std::optional<std::string> CheckConnectAddress(const IpAddress& address, std::string_view host,
                                               const EndpointRules& rules);

}  // namespace pgcourier::netguard

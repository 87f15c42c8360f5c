// Endpoint safety decisions (IP literals are parsed in ip_address.cpp).
//
// Special-purpose tables follow IANA's registries (checked 2024):
//   https://www.iana.org/assignments/iana-ipv4-special-registry/
//   https://www.iana.org/assignments/iana-ipv6-special-registry/
#include "netguard/address_policy.hpp"

#include "netguard/ascii.hpp"

#include <netinet/in.h>

#include <cstddef>
#include <cstring>

namespace pgcourier::netguard {
namespace {

using Bytes = std::array<std::uint8_t, 16>;
using detail::IsDigit;
using detail::ToLowerAscii;

constexpr std::string_view kNotAllowed = "; not in the policy's allow list";

// ---------------------------------------------------------------------------
// The special-purpose tables

// A block and what it is; an empty reason marks a globally reachable exception
// inside a larger blocked block (first match wins, so exceptions come first).
struct Rule {
  Bytes prefix;
  int length;
  std::string_view reason;
};

constexpr Rule V4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, int length, std::string_view reason) {
  return Rule{Bytes{a, b, c, d}, length, reason};
}

constexpr Rule V6(std::array<std::uint16_t, 8> groups, int length, std::string_view reason) {
  Bytes bytes{};
  for (std::size_t i = 0; i < 8; ++i) {
    bytes[2 * i] = static_cast<std::uint8_t>(groups[i] >> 8);
    bytes[2 * i + 1] = static_cast<std::uint8_t>(groups[i] & 0xff);
  }
  return Rule{bytes, length, reason};
}

constexpr std::array kIpv4Rules{
    V4(0, 0, 0, 0, 32, "unspecified (0.0.0.0)"),
    V4(0, 0, 0, 0, 8, "this-network (0.0.0.0/8)"),
    V4(10, 0, 0, 0, 8, "private (10.0.0.0/8)"),
    V4(100, 64, 0, 0, 10, "CGNAT (100.64.0.0/10)"),
    V4(127, 0, 0, 0, 8, "loopback (127.0.0.0/8)"),
    V4(169, 254, 0, 0, 16, "link-local (169.254.0.0/16, includes cloud metadata)"),
    V4(172, 16, 0, 0, 12, "private (172.16.0.0/12)"),
    V4(192, 0, 0, 9, 32, ""),   // Port Control Protocol anycast: globally reachable
    V4(192, 0, 0, 10, 32, ""),  // Traversal Using Relays around NAT anycast: globally reachable
    V4(192, 0, 0, 0, 24, "IETF protocol assignments (192.0.0.0/24)"),
    V4(192, 0, 2, 0, 24, "documentation (192.0.2.0/24)"),
    V4(192, 88, 99, 0, 24, "deprecated 6to4 relay anycast (192.88.99.0/24)"),
    V4(192, 168, 0, 0, 16, "private (192.168.0.0/16)"),
    V4(198, 18, 0, 0, 15, "benchmarking (198.18.0.0/15)"),
    V4(198, 51, 100, 0, 24, "documentation (198.51.100.0/24)"),
    V4(203, 0, 113, 0, 24, "documentation (203.0.113.0/24)"),
    V4(224, 0, 0, 0, 4, "multicast (224.0.0.0/4)"),
    V4(255, 255, 255, 255, 32, "broadcast (255.255.255.255)"),
    V4(240, 0, 0, 0, 4, "reserved (240.0.0.0/4)"),
};

// ::, ::1 and the blocks embedding IPv4 (::ffff:0:0/96, ::/96, 64:ff9b::/96,
// 2002::/16) are handled in code before this table.
constexpr std::array kIpv6Rules{
    V6({0x64, 0xff9b, 1, 0, 0, 0, 0, 0}, 48, "IPv6 local-use IPv4/IPv6 translation (64:ff9b:1::/48)"),
    V6({0x100, 0, 0, 0, 0, 0, 0, 0}, 64, "IPv6 discard-only (100::/64)"),
    // Globally reachable assignments inside 2001::/23.
    V6({0x2001, 1, 0, 0, 0, 0, 0, 1}, 128, ""),     // PCP anycast
    V6({0x2001, 1, 0, 0, 0, 0, 0, 2}, 128, ""),     // TURN anycast
    V6({0x2001, 1, 0, 0, 0, 0, 0, 3}, 128, ""),     // DNS-SD service registration anycast
    V6({0x2001, 3, 0, 0, 0, 0, 0, 0}, 32, ""),      // AMT
    V6({0x2001, 4, 0x112, 0, 0, 0, 0, 0}, 48, ""),  // AS112-v6
    V6({0x2001, 0x20, 0, 0, 0, 0, 0, 0}, 28, ""),   // ORCHIDv2
    V6({0x2001, 0x30, 0, 0, 0, 0, 0, 0}, 28, ""),   // Drone Remote ID
    V6({0x2001, 0, 0, 0, 0, 0, 0, 0}, 32, "Teredo (2001::/32)"),
    V6({0x2001, 2, 0, 0, 0, 0, 0, 0}, 48, "IPv6 benchmarking (2001:2::/48)"),
    V6({0x2001, 0x10, 0, 0, 0, 0, 0, 0}, 28, "deprecated ORCHID (2001:10::/28)"),
    V6({0x2001, 0, 0, 0, 0, 0, 0, 0}, 23, "IETF protocol assignments (2001::/23)"),
    V6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 0}, 32, "IPv6 documentation (2001:db8::/32)"),
    V6({0x3fff, 0, 0, 0, 0, 0, 0, 0}, 20, "IPv6 documentation (3fff::/20)"),
    V6({0x5f00, 0, 0, 0, 0, 0, 0, 0}, 16, "IPv6 segment routing SIDs (5f00::/16)"),
    V6({0xfc00, 0, 0, 0, 0, 0, 0, 0}, 7, "IPv6 unique local (fc00::/7)"),
    V6({0xfe80, 0, 0, 0, 0, 0, 0, 0}, 10, "IPv6 link-local (fe80::/10)"),
    V6({0xfec0, 0, 0, 0, 0, 0, 0, 0}, 10, "deprecated IPv6 site-local (fec0::/10)"),
    V6({0xff00, 0, 0, 0, 0, 0, 0, 0}, 8, "IPv6 multicast (ff00::/8)"),
    V6({0x2000, 0, 0, 0, 0, 0, 0, 0}, 3, ""),  // global unicast
    V6({0, 0, 0, 0, 0, 0, 0, 0}, 0, "IPv6 reserved (outside 2000::/3 global unicast)"),
};

template <std::size_t N>
std::optional<std::string> MatchRules(const std::array<Rule, N>& rules, const Bytes& bytes) {
  for (const Rule& rule : rules) {
    if (PrefixMatches(bytes, rule.prefix, rule.length)) {
      if (rule.reason.empty()) return std::nullopt;
      return std::string(rule.reason);
    }
  }
  return std::nullopt;
}

bool AllZero(const Bytes& bytes, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

std::string EmbeddingReason(std::string_view block, const IpAddress& embedded, const std::string& reason) {
  return std::string(block) + " embedding " + ToString(embedded) + ", which is " + reason;
}

std::optional<std::string> NonGlobalIpv6Reason(const Bytes& b) {
  if (AllZero(b, 0, 16)) return "IPv6 unspecified (::)";
  if (AllZero(b, 0, 15) && b[15] == 1) return "IPv6 loopback (::1)";
  if (AllZero(b, 0, 10) && b[10] == 0xff && b[11] == 0xff) {
    const IpAddress embedded = Ipv4At(b, 12);
    if (auto reason = MatchRules(kIpv4Rules, embedded.bytes)) {
      return EmbeddingReason("IPv4-mapped (::ffff:0:0/96)", embedded, *reason);
    }
    return std::nullopt;
  }
  if (AllZero(b, 0, 12)) {
    const IpAddress embedded = Ipv4At(b, 12);
    if (auto reason = MatchRules(kIpv4Rules, embedded.bytes)) {
      return EmbeddingReason("deprecated IPv4-compatible (::/96)", embedded, *reason);
    }
    return "deprecated IPv4-compatible (::/96)";
  }
  if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && AllZero(b, 4, 12)) {
    const IpAddress embedded = Ipv4At(b, 12);
    if (auto reason = MatchRules(kIpv4Rules, embedded.bytes)) {
      return EmbeddingReason("NAT64 (64:ff9b::/96)", embedded, *reason);
    }
    return std::nullopt;
  }
  if (b[0] == 0x20 && b[1] == 0x02) {
    const IpAddress embedded = Ipv4At(b, 2);
    if (auto reason = MatchRules(kIpv4Rules, embedded.bytes)) {
      return EmbeddingReason("6to4 (2002::/16)", embedded, *reason);
    }
    return "6to4 (2002::/16)";
  }
  return MatchRules(kIpv6Rules, b);
}

// ---------------------------------------------------------------------------
// Host names

// Lower-case, without one trailing dot.
std::string NormalizeHostName(std::string_view host) {
  if (host.size() > 1 && host.back() == '.') host.remove_suffix(1);
  return ToLowerAscii(host);
}

// `name` already normalized.
bool IsValidHostName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t label_length = 0;
  for (const char c : name) {
    if (c == '.') {
      if (label_length == 0) return false;
      label_length = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || IsDigit(c) || c == '-' || c == '_';
    if (!ok || ++label_length > 63) return false;
  }
  return label_length != 0;
}

bool MatchesAllowHosts(std::string_view host, const std::vector<std::string>& patterns) {
  const std::string name = NormalizeHostName(host);
  if (!IsValidHostName(name)) return false;
  for (const std::string& raw : patterns) {
    const std::string pattern = NormalizeHostName(raw);
    if (pattern.starts_with("*.")) {
      const std::string_view suffix = std::string_view(pattern).substr(1);  // ".example.internal"
      if (suffix.size() > 1 && name.size() > suffix.size() && name.ends_with(suffix)) return true;
    } else if (!pattern.empty() && pattern == name) {
      return true;
    }
  }
  return false;
}

bool InAllowOnlyAddresses(const IpAddress& address, const std::vector<IpAddress>& allowed) {
  const IpAddress embedded = IsIpv4Mapped(address) ? Ipv4At(address.bytes, 12) : address;
  for (const IpAddress& a : allowed) {
    if (a == address || a == embedded) return true;
  }
  return false;
}

bool InAllowCidrs(const IpAddress& address, const std::vector<Cidr>& cidrs) {
  const bool mapped = IsIpv4Mapped(address);
  const IpAddress embedded = mapped ? Ipv4At(address.bytes, 12) : IpAddress{};
  for (const Cidr& cidr : cidrs) {
    if (Contains(cidr, address)) return true;
    if (mapped && Contains(cidr, embedded)) return true;
  }
  return false;
}

// Untrusted text for messages: printable ASCII kept, other bytes as \xNN,
// cut after 253 characters.
std::string Printable(std::string_view text) {
  constexpr std::size_t kMax = 253;
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < kMax; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
      out += static_cast<char>(byte);
    } else {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  if (text.size() > kMax) out += "...";
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public functions

std::optional<std::string> NonGlobalReason(const IpAddress& address) {
  if (address.family == AF_INET) return MatchRules(kIpv4Rules, address.bytes);
  if (address.family == AF_INET6) return NonGlobalIpv6Reason(address.bytes);
  return "not an IPv4 or IPv6 address";
}

std::optional<std::string> CheckUrlTarget(std::string_view scheme, std::string_view host, const EndpointRules& rules) {
  const std::string lower_scheme = ToLowerAscii(scheme);
  if (rules.require_https && lower_scheme != "https") return "https is required by the policy";
  if (lower_scheme != "https" && lower_scheme != "http") {
    return "scheme \"" + Printable(scheme) + "\" is not allowed; only http and https are";
  }
  if (host.empty()) return "the URL has no host";

  if (const auto address = ParseIpLiteral(host)) {
    if (rules.allow_only && !InAllowOnlyAddresses(*address, rules.allow_only_addresses)) {
      std::string shown = Printable(host);
      const std::string canonical = ToString(*address);
      if (ToLowerAscii(host) != canonical) shown += " (" + canonical + ")";
      return shown + " is not in the policy's allow_only_hosts";
    }
    const auto reason = NonGlobalReason(*address);
    if (!reason || InAllowCidrs(*address, rules.allow_cidrs)) return std::nullopt;
    std::string shown = Printable(host);
    std::string_view bare = host;
    if (bare.size() >= 2 && bare.front() == '[') bare = bare.substr(1, bare.size() - 2);
    const std::string canonical = ToString(*address);
    if (ToLowerAscii(bare) != canonical) shown += " (" + canonical + ")";
    return shown + " is " + *reason + std::string(kNotAllowed);
  }

  if (!IsValidHostName(NormalizeHostName(host))) return Printable(host) + " is not a valid host name";
  if (rules.allow_only && !MatchesAllowHosts(host, rules.allow_only_hosts)) {
    return Printable(host) + " is not in the policy's allow_only_hosts";
  }
  return std::nullopt;  // a name: its addresses go through CheckConnectAddress
}

bool IsHostName(std::string_view host) { return IsValidHostName(NormalizeHostName(host)); }

std::optional<std::string> CheckConnectAddress(const IpAddress& address, std::string_view host,
                                               const EndpointRules& rules) {
  const auto reason = NonGlobalReason(address);
  if (!reason) return std::nullopt;
  if (InAllowCidrs(address, rules.allow_cidrs)) return std::nullopt;
  if (!ParseIpLiteral(host) && MatchesAllowHosts(host, rules.allow_hosts)) return std::nullopt;
  std::string message = "address " + ToString(address);
  if (!host.empty()) message += " of " + Printable(host);
  return message + " is " + *reason + std::string(kNotAllowed);
}

}  // namespace pgcourier::netguard

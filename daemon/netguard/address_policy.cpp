// Endpoint safety decisions. Parsing is hand-written (no inet_pton/inet_aton)
// so that what counts as an IP literal is exactly the WHATWG URL host parser's
// notion, which is also what curl and glibc's resolver accept: a host that a
// client library would read as 127.0.0.1 must be read as 127.0.0.1 here too.
//
// Special-purpose tables follow IANA's registries (checked 2024):
//   https://www.iana.org/assignments/iana-ipv4-special-registry/
//   https://www.iana.org/assignments/iana-ipv6-special-registry/
#include "netguard/address_policy.hpp"

#include <netinet/in.h>

#include <cstddef>
#include <cstring>

namespace pgcourier::netguard {
namespace {

using Bytes = std::array<std::uint8_t, 16>;

constexpr std::string_view kNotAllowed = "; not in the policy's allow list";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Value of a hex digit, or -1.
int DigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ToLowerAscii(c);
  return out;
}

// ---------------------------------------------------------------------------
// Parsing

// Exactly four decimal parts 0..255 without leading zeros: "192.0.2.1".
std::optional<std::array<std::uint8_t, 4>> ParseStrictDottedQuad(std::string_view text) {
  std::array<std::uint8_t, 4> out{};
  std::size_t part = 0;
  std::size_t pos = 0;
  while (true) {
    const std::size_t start = pos;
    unsigned value = 0;
    while (pos < text.size() && IsDigit(text[pos])) {
      if (pos - start == 3) return std::nullopt;
      value = value * 10 + static_cast<unsigned>(text[pos] - '0');
      ++pos;
    }
    const std::size_t length = pos - start;
    if (length == 0 || value > 255 || (length > 1 && text[start] == '0')) return std::nullopt;
    out[part++] = static_cast<std::uint8_t>(value);
    if (part == 4) {
      if (pos != text.size()) return std::nullopt;
      return out;
    }
    if (pos >= text.size() || text[pos] != '.') return std::nullopt;
    ++pos;
  }
}

// One part of a legacy IPv4 literal (WHATWG "IPv4 number parser"): "0x" prefix
// for hex, a leading "0" for octal, decimal otherwise; "0x" alone is 0. Values
// above 2^32 are reported as 2^32 + 1 (too large for any position).
std::optional<std::uint64_t> ParseIpv4Number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int radix = 10;
  if (text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    radix = 16;
    text.remove_prefix(2);
  } else if (text.size() >= 2 && text[0] == '0') {
    radix = 8;
    text.remove_prefix(1);
  }
  constexpr std::uint64_t kTooLarge = (std::uint64_t{1} << 32) + 1;
  std::uint64_t value = 0;
  for (const char c : text) {
    const int digit = DigitValue(c);
    if (digit < 0 || digit >= radix) return std::nullopt;
    if (value < kTooLarge) value = value * static_cast<std::uint64_t>(radix) + static_cast<std::uint64_t>(digit);
    if (value > kTooLarge) value = kTooLarge;
  }
  return value;
}

// WHATWG "IPv4 parser": one to four parts; all but the last are bytes, the last
// fills the remaining bytes. One trailing dot is ignored.
std::optional<std::uint32_t> ParseLegacyIpv4(std::string_view text) {
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  std::array<std::uint64_t, 4> parts{};
  std::size_t count = 0;
  while (true) {
    if (count == parts.size()) return std::nullopt;  // a fifth part
    const std::size_t dot = text.find('.');
    const auto number = ParseIpv4Number(text.substr(0, dot));
    if (!number) return std::nullopt;
    parts[count++] = *number;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }
  for (std::size_t i = 0; i + 1 < count; ++i) {
    if (parts[i] > 255) return std::nullopt;
  }
  const std::uint64_t limit = std::uint64_t{1} << (8 * (5 - count));
  if (parts[count - 1] >= limit) return std::nullopt;
  std::uint64_t result = parts[count - 1];
  for (std::size_t i = 0; i + 1 < count; ++i) result += parts[i] << (8 * (3 - i));
  return static_cast<std::uint32_t>(result);
}

// Colon-separated groups of 1..4 hex digits ("" is zero groups). The last one
// may be a dotted quad (two groups) when `allow_ipv4_tail`.
bool ParseIpv6Groups(std::string_view text, bool allow_ipv4_tail, std::array<std::uint16_t, 8>& groups,
                     std::size_t& count) {
  count = 0;
  if (text.empty()) return true;
  while (true) {
    const std::size_t colon = text.find(':');
    const std::string_view token = text.substr(0, colon);
    const bool last = colon == std::string_view::npos;
    if (last && allow_ipv4_tail && token.find('.') != std::string_view::npos) {
      const auto quad = ParseStrictDottedQuad(token);
      if (!quad || count + 2 > groups.size()) return false;
      groups[count++] = static_cast<std::uint16_t>((*quad)[0] << 8 | (*quad)[1]);
      groups[count++] = static_cast<std::uint16_t>((*quad)[2] << 8 | (*quad)[3]);
      return true;
    }
    if (token.empty() || token.size() > 4 || count == groups.size()) return false;
    unsigned value = 0;
    for (const char c : token) {
      const int digit = DigitValue(c);
      if (digit < 0) return false;
      value = value * 16 + static_cast<unsigned>(digit);
    }
    groups[count++] = static_cast<std::uint16_t>(value);
    if (last) return true;
    text.remove_prefix(colon + 1);
  }
}

// RFC 4291 text form without brackets or zone id. "::" stands for at least one
// zero group.
std::optional<Bytes> ParseIpv6(std::string_view text) {
  std::array<std::uint16_t, 8> head{};
  std::array<std::uint16_t, 8> tail{};
  std::size_t head_count = 0;
  std::size_t tail_count = 0;
  const std::size_t gap = text.find("::");
  if (gap == std::string_view::npos) {
    if (!ParseIpv6Groups(text, true, head, head_count) || head_count != 8) return std::nullopt;
  } else {
    const std::string_view after = text.substr(gap + 2);
    if (after.find("::") != std::string_view::npos) return std::nullopt;
    if (!ParseIpv6Groups(text.substr(0, gap), false, head, head_count)) return std::nullopt;
    if (!ParseIpv6Groups(after, true, tail, tail_count)) return std::nullopt;
    if (head_count + tail_count > 7) return std::nullopt;
  }
  std::array<std::uint16_t, 8> groups{};
  for (std::size_t i = 0; i < head_count; ++i) groups[i] = head[i];
  for (std::size_t i = 0; i < tail_count; ++i) groups[8 - tail_count + i] = tail[i];
  Bytes bytes{};
  for (std::size_t i = 0; i < 8; ++i) {
    bytes[2 * i] = static_cast<std::uint8_t>(groups[i] >> 8);
    bytes[2 * i + 1] = static_cast<std::uint8_t>(groups[i] & 0xff);
  }
  return bytes;
}

std::optional<int> ParsePrefixLength(std::string_view text, int max) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  int value = 0;
  for (const char c : text) {
    if (!IsDigit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

// ---------------------------------------------------------------------------
// Prefix matching and the special-purpose tables

bool PrefixMatches(const Bytes& address, const Bytes& prefix, int length) {
  std::size_t index = 0;
  while (length >= 8) {
    if (address[index] != prefix[index]) return false;
    ++index;
    length -= 8;
  }
  if (length == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - length));
  return (address[index] & mask) == (prefix[index] & mask);
}

bool HostBitsZero(const Bytes& bytes, int length, int total_bits) {
  for (int bit = length; bit < total_bits; ++bit) {
    if (bytes[static_cast<std::size_t>(bit / 8)] & (0x80 >> (bit % 8))) return false;
  }
  return true;
}

// A block and what it is; an empty reason marks a globally reachable exception
// inside a larger blocked block (first match wins, so exceptions come first).
struct Rule {
  Bytes prefix;
  int length;
  std::string_view reason;
};

constexpr Rule V4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, int length,
                  std::string_view reason) {
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
    V6({0x2001, 1, 0, 0, 0, 0, 0, 1}, 128, ""),   // PCP anycast
    V6({0x2001, 1, 0, 0, 0, 0, 0, 2}, 128, ""),   // TURN anycast
    V6({0x2001, 1, 0, 0, 0, 0, 0, 3}, 128, ""),   // DNS-SD service registration anycast
    V6({0x2001, 3, 0, 0, 0, 0, 0, 0}, 32, ""),    // AMT
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

IpAddress Ipv4At(const Bytes& bytes, std::size_t offset) {
  IpAddress out{AF_INET, {}};
  for (std::size_t i = 0; i < 4; ++i) out.bytes[i] = bytes[offset + i];
  return out;
}

bool AllZero(const Bytes& bytes, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

bool IsIpv4Mapped(const IpAddress& address) {
  return address.family == AF_INET6 && AllZero(address.bytes, 0, 10) && address.bytes[10] == 0xff &&
         address.bytes[11] == 0xff;
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

std::optional<Cidr> ParseCidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  Cidr cidr;
  int max = 0;
  if (address_text.find(':') != std::string_view::npos) {
    const auto bytes = ParseIpv6(address_text);
    if (!bytes) return std::nullopt;
    cidr.family = AF_INET6;
    cidr.bytes = *bytes;
    max = 128;
  } else {
    const auto quad = ParseStrictDottedQuad(address_text);
    if (!quad) return std::nullopt;
    cidr.family = AF_INET;
    for (std::size_t i = 0; i < 4; ++i) cidr.bytes[i] = (*quad)[i];
    max = 32;
  }
  if (slash == std::string_view::npos) {
    cidr.prefix_length = max;
  } else {
    const auto length = ParsePrefixLength(text.substr(slash + 1), max);
    if (!length) return std::nullopt;
    cidr.prefix_length = *length;
  }
  if (!HostBitsZero(cidr.bytes, cidr.prefix_length, max)) return std::nullopt;
  return cidr;
}

bool Contains(const Cidr& cidr, const IpAddress& address) {
  if (cidr.family != address.family) return false;
  const int max = cidr.family == AF_INET ? 32 : cidr.family == AF_INET6 ? 128 : -1;
  if (cidr.prefix_length < 0 || cidr.prefix_length > max) return false;
  return PrefixMatches(address.bytes, cidr.bytes, cidr.prefix_length);
}

std::optional<IpAddress> ParseIpLiteral(std::string_view host) {
  if (host.empty()) return std::nullopt;
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') return std::nullopt;
    const std::string_view inner = host.substr(1, host.size() - 2);
    const auto bytes = ParseIpv6(inner);  // rejects '%' (zone ids) and IPv4 inside brackets
    if (!bytes) return std::nullopt;
    return IpAddress{AF_INET6, *bytes};
  }
  if (host.find(':') != std::string_view::npos) {
    const auto bytes = ParseIpv6(host);
    if (!bytes) return std::nullopt;
    return IpAddress{AF_INET6, *bytes};
  }
  const auto value = ParseLegacyIpv4(host);
  if (!value) return std::nullopt;
  IpAddress address{AF_INET, {}};
  address.bytes[0] = static_cast<std::uint8_t>(*value >> 24);
  address.bytes[1] = static_cast<std::uint8_t>(*value >> 16);
  address.bytes[2] = static_cast<std::uint8_t>(*value >> 8);
  address.bytes[3] = static_cast<std::uint8_t>(*value);
  return address;
}

std::optional<std::string> NonGlobalReason(const IpAddress& address) {
  if (address.family == AF_INET) return MatchRules(kIpv4Rules, address.bytes);
  if (address.family == AF_INET6) return NonGlobalIpv6Reason(address.bytes);
  return "not an IPv4 or IPv6 address";
}

std::optional<std::string> CheckUrlTarget(std::string_view scheme, std::string_view host,
                                          const EndpointRules& rules) {
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

std::optional<IpAddress> FromSockaddr(const sockaddr* address, socklen_t length) {
  if (address == nullptr || length < static_cast<socklen_t>(sizeof(sa_family_t))) return std::nullopt;
  sa_family_t family = 0;
  std::memcpy(&family, reinterpret_cast<const char*>(address) + offsetof(sockaddr, sa_family), sizeof family);
  IpAddress out;
  if (family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof in);
    out.family = AF_INET;
    std::memcpy(out.bytes.data(), &in.sin_addr, 4);
    return out;
  }
  if (family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof in6);
    out.family = AF_INET6;
    std::memcpy(out.bytes.data(), &in6.sin6_addr, 16);
    return out;
  }
  return std::nullopt;
}

std::string ToString(const IpAddress& address) {
  const Bytes& b = address.bytes;
  if (address.family == AF_INET) {
    return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." +
           std::to_string(b[3]);
  }
  if (address.family != AF_INET6) return "<no address>";
  if (IsIpv4Mapped(address)) return "::ffff:" + ToString(Ipv4At(b, 12));

  std::array<unsigned, 8> groups{};
  for (std::size_t i = 0; i < 8; ++i) groups[i] = static_cast<unsigned>(b[2 * i] << 8 | b[2 * i + 1]);
  // RFC 5952: compress the longest run of two or more zero groups (the first on a tie).
  std::size_t best_start = 8;
  std::size_t best_length = 1;
  for (std::size_t i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_length) {
      best_start = i;
      best_length = j - i;
    }
    i = j;
  }
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_length - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned nibble = (groups[i] >> shift) & 0xf;
      if (nibble != 0 || started || shift == 0) {
        out += kHex[nibble];
        started = true;
      }
    }
  }
  return out;
}

std::string ToString(const Cidr& cidr) {
  return ToString(IpAddress{cidr.family, cidr.bytes}) + "/" + std::to_string(cidr.prefix_length);
}

}  // namespace pgcourier::netguard

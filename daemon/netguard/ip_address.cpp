// Parsing is hand-written (no inet_pton/inet_aton) so that what counts as
// an IP literal is exactly the WHATWG URL host parser's notion, which is also
// what curl and glibc's resolver accept: a host that a client library would
// read as 127.0.0.1 must be read as 127.0.0.1 here too.
#include "netguard/ip_address.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "netguard/ascii.hpp"

namespace pgcourier::netguard {
namespace {

using Bytes = std::array<std::uint8_t, 16>;
using detail::DigitValue;
using detail::IsDigit;

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

bool HostBitsZero(const Bytes& bytes, int length, int total_bits) {
  for (int bit = length; bit < total_bits; ++bit) {
    if (bytes[static_cast<std::size_t>(bit / 8)] & (0x80 >> (bit % 8))) return false;
  }
  return true;
}

}  // namespace

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
    return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." + std::to_string(b[3]);
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

IpAddress Ipv4At(const Bytes& bytes, std::size_t offset) {
  IpAddress out{AF_INET, {}};
  for (std::size_t i = 0; i < 4; ++i) out.bytes[i] = bytes[offset + i];
  return out;
}

bool IsIpv4Mapped(const IpAddress& address) {
  constexpr std::array<std::uint8_t, 12> kPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return address.family == AF_INET6 && std::equal(kPrefix.begin(), kPrefix.end(), address.bytes.begin());
}

}  // namespace pgcourier::netguard

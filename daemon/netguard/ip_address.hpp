// IP addresses and address blocks as the endpoint rules (address_policy.hpp)
// see them: parsing an IP literal exactly as a URL host is read (the WHATWG
// URL host parser's notion, which curl and glibc's resolver share), strict
// parsing of configured blocks, containment, and printing. Pure: no DNS, no
// sockets, no global state; thread-safe; IpAddress and Cidr are plain values.
#pragma once

#include <sys/socket.h>  // AF_INET, AF_INET6, AF_UNSPEC, sockaddr, socklen_t

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgcourier::netguard {

// An IPv4 or IPv6 address. AF_INET uses bytes[0..3] (network order) and keeps
// the other 12 bytes zero. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) stay
// AF_INET6; the rules below look at the embedded IPv4 address.
struct IpAddress {
  int family = AF_UNSPEC;  // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// An address block: family, network address (host bits are zero) and prefix length.
struct Cidr {
  int family = AF_UNSPEC;  // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};
  int prefix_length = 0;  // 0..32 for AF_INET, 0..128 for AF_INET6

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// Configuration syntax, strict on purpose: "10.0.0.0/8", "127.0.0.1" (= /32),
// "::1/128", "fd00::/8", "::1" (= /128). IPv4 must be a plain dotted quad without
// leading zeros (no "0177.0.0.1"); IPv6 without brackets or zone id; the prefix
// is decimal. nullopt if invalid, including when host bits are set
// ("10.0.0.1/8"), since that is almost always a typo.
std::optional<Cidr> ParseCidr(std::string_view text);

// True if `address` is inside `cidr` (same family only; see CheckConnectAddress
// for how IPv4-mapped addresses meet IPv4 blocks in the allow list).
bool Contains(const Cidr& cidr, const IpAddress& address);

// Parses an IP literal as a URL host may carry it, the way browsers (WHATWG URL
// standard) and curl interpret it:
//   IPv4: dotted quad, and the legacy forms: one to four parts, each decimal,
//         hex ("0x7f") or octal ("0177"), the last part filling the remaining
//         bytes: "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1",
//         "127.1", "127.0.1", "0x7f.1"; one trailing dot is ignored ("127.0.0.1.").
//         Parts out of range ("256.1.1.1"), more than four parts ("1.2.3.4.5"),
//         bad digits ("08.1") make it not a literal.
//   IPv6: with or without brackets ("[::1]", "::1"), with an optional trailing
//         dotted quad ("::ffff:127.0.0.1"). Zone ids ("fe80::1%eth0",
//         "[fe80::1%25eth0]") are rejected.
// nullopt if `host` is not an IP literal, i.e. it is a host name to be resolved
// (or garbage; CheckUrlTarget tells the two apart). No whitespace is accepted.
std::optional<IpAddress> ParseIpLiteral(std::string_view host);

// The IPv4 address in bytes [offset, offset + 4) of an IPv6 address's bytes.
IpAddress Ipv4At(const std::array<std::uint8_t, 16>& bytes, std::size_t offset);

// Whether it is an IPv4-mapped IPv6 address (::ffff:a.b.c.d).
bool IsIpv4Mapped(const IpAddress& address);

// Whether the first `length` bits of `address` and `prefix` are equal.
bool PrefixMatches(const std::array<std::uint8_t, 16>& address, const std::array<std::uint8_t, 16>& prefix, int length);

// The address from a socket address (AF_INET or AF_INET6; the IPv6 scope id is
// dropped). nullopt for other families or a too short `length`.
std::optional<IpAddress> FromSockaddr(const sockaddr* address, socklen_t length);

// "127.0.0.1"; IPv6 in RFC 5952 form ("2001:db8::1", "::ffff:127.0.0.1"), no
// brackets. ParseIpLiteral(ToString(a)) == a for every AF_INET/AF_INET6 address.
std::string ToString(const IpAddress& address);

// "10.0.0.0/8", "fd00::/8". ParseCidr(ToString(c)) == c.
std::string ToString(const Cidr& cidr);

}  // namespace pgcourier::netguard

// Tests for netguard/: IP literal parsing (including the legacy forms browsers
// and curl accept), the special-purpose address tables and the endpoint rules.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "netguard/address_policy.hpp"

namespace {

using pgcourier::netguard::CheckConnectAddress;
using pgcourier::netguard::CheckUrlTarget;
using pgcourier::netguard::Cidr;
using pgcourier::netguard::Contains;
using pgcourier::netguard::EndpointRules;
using pgcourier::netguard::FromSockaddr;
using pgcourier::netguard::IpAddress;
using pgcourier::netguard::NonGlobalReason;
using pgcourier::netguard::ParseCidr;
using pgcourier::netguard::ParseIpLiteral;
using pgcourier::netguard::ToString;

IpAddress Ip(const char* text) {
  const auto address = ParseIpLiteral(text);
  REQUIRE_MESSAGE(address.has_value(), text);
  return *address;
}

Cidr Block(const char* text) {
  const auto cidr = ParseCidr(text);
  REQUIRE_MESSAGE(cidr.has_value(), text);
  return *cidr;
}

bool Has(const std::optional<std::string>& text, const char* part) {
  return text.has_value() && text->find(part) != std::string::npos;
}

struct LiteralCase {
  const char* host;
  const char* canonical;  // ToString of the parsed address; nullptr: not an IP literal
  const char* reason;     // a part of NonGlobalReason; nullptr: globally reachable
};

// clang-format off
const LiteralCase kLiteralCases[] = {
    // IPv4 loopback in every disguise.
    {"127.0.0.1", "127.0.0.1", "loopback (127.0.0.0/8)"},
    {"127.1", "127.0.0.1", "loopback"},
    {"127.0.1", "127.0.0.1", "loopback"},
    {"2130706433", "127.0.0.1", "loopback"},
    {"0x7f000001", "127.0.0.1", "loopback"},
    {"0X7F000001", "127.0.0.1", "loopback"},
    {"0x7f.0.0.1", "127.0.0.1", "loopback"},
    {"0x7f.0x0.0x0.0x1", "127.0.0.1", "loopback"},
    {"0177.0.0.1", "127.0.0.1", "loopback"},
    {"0177.0.0.01", "127.0.0.1", "loopback"},
    {"0x7f.1", "127.0.0.1", "loopback"},
    {"127.0.0.1.", "127.0.0.1", "loopback"},
    {"127.255.255.254", "127.255.255.254", "loopback"},
    // This network, unspecified.
    {"0.0.0.0", "0.0.0.0", "unspecified"},
    {"0", "0.0.0.0", "unspecified"},
    {"0x", "0.0.0.0", "unspecified"},
    {"00000", "0.0.0.0", "unspecified"},
    {"0.1.2.3", "0.1.2.3", "this-network (0.0.0.0/8)"},
    // Private.
    {"10.0.0.1", "10.0.0.1", "private (10.0.0.0/8)"},
    {"10.255.255.255", "10.255.255.255", "private (10.0.0.0/8)"},
    {"012.1", "10.0.0.1", "private (10.0.0.0/8)"},
    {"172.16.0.1", "172.16.0.1", "private (172.16.0.0/12)"},
    {"172.20.1.1", "172.20.1.1", "private (172.16.0.0/12)"},
    {"172.31.255.255", "172.31.255.255", "private (172.16.0.0/12)"},
    {"172.15.255.255", "172.15.255.255", nullptr},
    {"172.32.0.1", "172.32.0.1", nullptr},
    {"192.168.0.1", "192.168.0.1", "private (192.168.0.0/16)"},
    {"192.168.255.255", "192.168.255.255", "private (192.168.0.0/16)"},
    {"3232235777", "192.168.1.1", "private (192.168.0.0/16)"},
    {"192.169.0.1", "192.169.0.1", nullptr},
    // Link-local and the cloud metadata service.
    {"169.254.169.254", "169.254.169.254", "link-local (169.254.0.0/16, includes cloud metadata)"},
    {"0xa9fea9fe", "169.254.169.254", "link-local"},
    {"0251.0376.0251.0376", "169.254.169.254", "link-local"},
    {"169.254.43518", "169.254.169.254", "link-local"},
    // CGNAT.
    {"100.64.0.1", "100.64.0.1", "CGNAT (100.64.0.0/10)"},
    {"100.127.255.255", "100.127.255.255", "CGNAT"},
    {"100.63.255.255", "100.63.255.255", nullptr},
    {"100.128.0.1", "100.128.0.1", nullptr},
    // Multicast, reserved, broadcast.
    {"224.0.0.1", "224.0.0.1", "multicast (224.0.0.0/4)"},
    {"239.255.255.250", "239.255.255.250", "multicast"},
    {"240.0.0.1", "240.0.0.1", "reserved (240.0.0.0/4)"},
    {"255.255.255.254", "255.255.255.254", "reserved"},
    {"255.255.255.255", "255.255.255.255", "broadcast (255.255.255.255)"},
    {"4294967295", "255.255.255.255", "broadcast"},
    // Documentation, benchmarking, IETF.
    {"192.0.2.1", "192.0.2.1", "documentation (192.0.2.0/24)"},
    {"198.51.100.1", "198.51.100.1", "documentation (198.51.100.0/24)"},
    {"203.0.113.1", "203.0.113.1", "documentation (203.0.113.0/24)"},
    {"198.18.0.1", "198.18.0.1", "benchmarking (198.18.0.0/15)"},
    {"198.19.255.255", "198.19.255.255", "benchmarking"},
    {"198.20.0.1", "198.20.0.1", nullptr},
    {"198.17.255.255", "198.17.255.255", nullptr},
    {"192.0.0.8", "192.0.0.8", "IETF protocol assignments (192.0.0.0/24)"},
    {"192.0.0.170", "192.0.0.170", "IETF protocol assignments"},
    {"192.0.0.9", "192.0.0.9", nullptr},
    {"192.0.0.10", "192.0.0.10", nullptr},
    {"192.88.99.1", "192.88.99.1", "6to4 relay anycast"},
    // Global.
    {"8.8.8.8", "8.8.8.8", nullptr},
    {"1.1.1.1", "1.1.1.1", nullptr},
    {"1.2.3", "1.2.0.3", nullptr},  // browsers and curl read it as 1.2.0.3
    {"1.2.65535", "1.2.255.255", nullptr},
    {"134744072", "8.8.8.8", nullptr},
    {"192.31.196.1", "192.31.196.1", nullptr},  // AS112, globally reachable
    // IPv6.
    {"::1", "::1", "IPv6 loopback (::1)"},
    {"[::1]", "::1", "IPv6 loopback (::1)"},
    {"0:0:0:0:0:0:0:1", "::1", "IPv6 loopback"},
    {"[0000:0000:0000:0000:0000:0000:0000:0001]", "::1", "IPv6 loopback"},
    {"::", "::", "IPv6 unspecified"},
    {"[::]", "::", "IPv6 unspecified"},
    {"fc00::1", "fc00::1", "IPv6 unique local (fc00::/7)"},
    {"fd12::1", "fd12::1", "IPv6 unique local (fc00::/7)"},
    {"FD12::1", "fd12::1", "IPv6 unique local"},
    {"fd00:ec2::254", "fd00:ec2::254", "IPv6 unique local"},  // AWS IPv6 metadata
    {"fe80::1", "fe80::1", "IPv6 link-local (fe80::/10)"},
    {"febf::1", "febf::1", "IPv6 link-local"},
    {"fec0::1", "fec0::1", "site-local"},
    {"ff02::1", "ff02::1", "IPv6 multicast (ff00::/8)"},
    {"[ff05::1:3]", "ff05::1:3", "IPv6 multicast"},
    {"::ffff:127.0.0.1", "::ffff:127.0.0.1", "IPv4-mapped (::ffff:0:0/96) embedding 127.0.0.1, which is loopback (127.0.0.0/8)"},
    {"[::ffff:7f00:1]", "::ffff:127.0.0.1", "loopback (127.0.0.0/8)"},
    {"[::FFFF:7F00:0001]", "::ffff:127.0.0.1", "IPv4-mapped"},
    {"::ffff:10.0.0.1", "::ffff:10.0.0.1", "private (10.0.0.0/8)"},
    {"::ffff:169.254.169.254", "::ffff:169.254.169.254", "link-local"},
    {"::ffff:0.0.0.0", "::ffff:0.0.0.0", "unspecified (0.0.0.0)"},
    {"::ffff:8.8.8.8", "::ffff:8.8.8.8", nullptr},
    {"0:0:0:0:0:ffff:808:808", "::ffff:8.8.8.8", nullptr},
    {"::127.0.0.1", "::7f00:1", "IPv4-compatible (::/96) embedding 127.0.0.1, which is loopback"},
    {"::10.1.2.3", "::a01:203", "private"},
    {"::8.8.8.8", "::808:808", "deprecated IPv4-compatible (::/96)"},
    {"64:ff9b::7f00:1", "64:ff9b::7f00:1", "NAT64 (64:ff9b::/96) embedding 127.0.0.1, which is loopback"},
    {"64:ff9b::10.0.0.1", "64:ff9b::a00:1", "NAT64 (64:ff9b::/96) embedding 10.0.0.1"},
    {"64:ff9b::8.8.8.8", "64:ff9b::808:808", nullptr},
    {"64:ff9b:1::1", "64:ff9b:1::1", "local-use IPv4/IPv6 translation"},
    {"2002:7f00:1::1", "2002:7f00:1::1", "6to4 (2002::/16) embedding 127.0.0.1, which is loopback"},
    {"2002:808:808::1", "2002:808:808::1", "6to4 (2002::/16)"},
    {"2001::1", "2001::1", "Teredo (2001::/32)"},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
    {"2001:2::1", "2001:2::1", "IPv6 benchmarking"},
    {"2001:10::1", "2001:10::1", "ORCHID"},
    {"2001:100::1", "2001:100::1", "IETF protocol assignments (2001::/23)"},
    {"2001:1::1", "2001:1::1", nullptr},
    {"2001:1::4", "2001:1::4", "IETF protocol assignments"},
    {"2001:20::1", "2001:20::1", nullptr},
    {"2001:db8::1", "2001:db8::1", "IPv6 documentation (2001:db8::/32)"},
    {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", "IPv6 documentation"},
    {"3fff::1", "3fff::1", "IPv6 documentation (3fff::/20)"},
    {"100::1", "100::1", "discard-only"},
    {"5f00::1", "5f00::1", "segment routing"},
    {"4000::1", "4000::1", "IPv6 reserved"},
    {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", "IPv6 reserved"},
    {"::ffff:0:7f00:1", "::ffff:0:7f00:1", "IPv6 reserved"},  // SIIT form, never routed
    {"2606:4700:4700::1111", "2606:4700:4700::1111", nullptr},
    {"2001:4860:4860::8888", "2001:4860:4860::8888", nullptr},
    {"[2001:4860:4860:0:0:0:0:8888]", "2001:4860:4860::8888", nullptr},
    {"2001:db9:0:0:1:0:0:1", "2001:db9::1:0:0:1", nullptr},  // RFC 5952: first of equal runs
    {"2001:db9:0:1:0:0:0:1", "2001:db9:0:1::1", nullptr},    // longest run; single 0 kept
    {"2001:db9:1:1:1:1:1:0", "2001:db9:1:1:1:1:1:0", nullptr},
    {"2a00:1450::1.2.3.4", "2a00:1450::102:304", nullptr},
    // Not IP literals: host names or garbage.
    {"fe80::1%eth0", nullptr, nullptr},
    {"[fe80::1%25eth0]", nullptr, nullptr},
    {"[fe80::1%eth0]", nullptr, nullptr},
    {"", nullptr, nullptr},
    {"256.1.1.1", nullptr, nullptr},
    {"1.2.3.256", nullptr, nullptr},
    {"1.2.65536", nullptr, nullptr},
    {"1.2.3.4.5", nullptr, nullptr},
    {"4294967296", nullptr, nullptr},
    {"0x100000000", nullptr, nullptr},
    {"99999999999999999999999999", nullptr, nullptr},
    {"08.0.0.1", nullptr, nullptr},
    {"0x7g.0.0.1", nullptr, nullptr},
    {"1..2.3", nullptr, nullptr},
    {".1.2.3", nullptr, nullptr},
    {".", nullptr, nullptr},
    {"127.0.0.1..", nullptr, nullptr},
    {" 127.0.0.1", nullptr, nullptr},
    {"127.0.0.1 ", nullptr, nullptr},
    {"-1", nullptr, nullptr},
    {"+1", nullptr, nullptr},
    {"1e3", nullptr, nullptr},
    {"example.com", nullptr, nullptr},
    {"localhost", nullptr, nullptr},
    {"[127.0.0.1]", nullptr, nullptr},
    {"[::1", nullptr, nullptr},
    {"::1]", nullptr, nullptr},
    {"[]", nullptr, nullptr},
    {"[", nullptr, nullptr},
    {":", nullptr, nullptr},
    {":::", nullptr, nullptr},
    {":1::", nullptr, nullptr},
    {"1::2::3", nullptr, nullptr},
    {"1:2:3:4:5:6:7:8:9", nullptr, nullptr},
    {"1:2:3:4:5:6:7", nullptr, nullptr},
    {"1:2:3:4::5:6:7:8", nullptr, nullptr},
    {"12345::1", nullptr, nullptr},
    {"g::1", nullptr, nullptr},
    {"::ffff:127.0.0.01", nullptr, nullptr},
    {"::ffff:1.2.3", nullptr, nullptr},
    {"::ffff:0x7f.0.0.1", nullptr, nullptr},
    {"::1.2.3.4:1", nullptr, nullptr},
    {"1.2.3.4::", nullptr, nullptr},
    {"1:2:3:4:5:6:7:1.2.3.4", nullptr, nullptr},
    {"::1/128", nullptr, nullptr},
};
// clang-format on

}  // namespace

TEST_CASE("netguard: ParseIpLiteral, ToString and NonGlobalReason on tricky hosts") {
  for (const LiteralCase& c : kLiteralCases) {
    CAPTURE(c.host);
    const auto address = ParseIpLiteral(c.host);
    if (c.canonical == nullptr) {
      CHECK_FALSE(address.has_value());
      continue;
    }
    REQUIRE(address.has_value());
    CHECK(ToString(*address) == c.canonical);
    const auto reason = NonGlobalReason(*address);
    if (c.reason == nullptr) {
      CHECK_MESSAGE(!reason.has_value(), reason.value_or(""));
    } else {
      CHECK_MESSAGE(Has(reason, c.reason), reason.value_or("(global)"));
    }
    // Whatever form it came in, the canonical form means the same address.
    const auto again = ParseIpLiteral(ToString(*address));
    REQUIRE(again.has_value());
    CHECK(*again == *address);
  }
}

TEST_CASE("netguard: families and byte layout") {
  const IpAddress v4 = Ip("0x7f.1");
  CHECK(v4.family == AF_INET);
  CHECK(v4.bytes == std::array<std::uint8_t, 16>{127, 0, 0, 1});
  const IpAddress v6 = Ip("[::ffff:7f00:1]");
  CHECK(v6.family == AF_INET6);
  CHECK(v6.bytes == std::array<std::uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1});
  CHECK(NonGlobalReason(IpAddress{}) == "not an IPv4 or IPv6 address");
  CHECK(NonGlobalReason(IpAddress{12345, {}}).has_value());
  CHECK(ToString(IpAddress{}) == "<no address>");
}

TEST_CASE("netguard: ParseIpLiteral agrees with inet_pton on plain forms") {
  for (const char* text : {"1.2.3.4", "255.255.255.255", "0.0.0.0", "::", "::1", "1::", "fe80::1:2",
                           "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "a:b:c:d:e:f:1:2", "0:0::0:0"}) {
    CAPTURE(text);
    const auto address = ParseIpLiteral(text);
    REQUIRE(address.has_value());
    unsigned char buffer[16] = {};
    const int family = std::strchr(text, ':') ? AF_INET6 : AF_INET;
    REQUIRE(inet_pton(family, text, buffer) == 1);
    CHECK(address->family == family);
    CHECK(std::memcmp(address->bytes.data(), buffer, family == AF_INET ? 4 : 16) == 0);
  }
}

TEST_CASE("netguard: ParseCidr and Contains") {
  const Cidr ten = Block("10.0.0.0/8");
  CHECK(ten.family == AF_INET);
  CHECK(ten.prefix_length == 8);
  CHECK(Contains(ten, Ip("10.1.2.3")));
  CHECK_FALSE(Contains(ten, Ip("11.0.0.0")));
  CHECK_FALSE(Contains(ten, Ip("::ffff:10.1.2.3")));  // strict family; the allow list maps

  const Cidr host = Block("127.0.0.1");
  CHECK(host.prefix_length == 32);
  CHECK(Contains(host, Ip("127.0.0.1")));
  CHECK_FALSE(Contains(host, Ip("127.0.0.2")));

  CHECK(Block("::1/128") == Block("::1"));
  CHECK(Contains(Block("fd00::/8"), Ip("fd12::1")));
  CHECK_FALSE(Contains(Block("fd00::/8"), Ip("fc00::1")));
  CHECK(Contains(Block("0.0.0.0/0"), Ip("8.8.8.8")));
  CHECK(Contains(Block("::/0"), Ip("2001:db8::1")));
  CHECK_FALSE(Contains(Block("::/0"), Ip("8.8.8.8")));
  CHECK(Contains(Block("172.16.0.0/12"), Ip("172.31.255.255")));
  CHECK_FALSE(Contains(Block("172.16.0.0/12"), Ip("172.32.0.0")));
  CHECK(Contains(Block("fe80::/10"), Ip("febf:ffff::1")));

  CHECK(ToString(Block("10.0.0.0/8")) == "10.0.0.0/8");
  CHECK(ToString(Block("fd00::/8")) == "fd00::/8");
  CHECK(ToString(Block("2001:DB8:0:0::/32")) == "2001:db8::/32");

  for (const char* bad : {"", "/", "10.0.0.0/", "/8", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08",
                          "10.0.0.0/8/8", "10/8", "10.0.0/24", "0x0a.0.0.0/8", "010.0.0.0/8", "256.0.0.0/8",
                          "10.0.0.0 /8", "::1/129", "fd00::/7", "[::1]/128", "fe80::1%eth0/128", "::1/1000",
                          "10.0.0.0/8 ", "localhost", "::1/+8"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseCidr(bad).has_value());
  }
}

TEST_CASE("netguard: CheckUrlTarget") {
  const EndpointRules strict;  // https only, no allow list
  CHECK(CheckUrlTarget("https", "example.com", strict) == std::nullopt);
  CHECK(CheckUrlTarget("HTTPS", "Example.COM.", strict) == std::nullopt);
  CHECK(CheckUrlTarget("https", "8.8.8.8", strict) == std::nullopt);
  CHECK(CheckUrlTarget("https", "[2606:4700:4700::1111]", strict) == std::nullopt);
  CHECK(CheckUrlTarget("http", "example.com", strict) == "https is required by the policy");
  CHECK(CheckUrlTarget("ftp", "example.com", strict) == "https is required by the policy");

  EndpointRules plain;
  plain.require_https = false;
  CHECK(CheckUrlTarget("http", "example.com", plain) == std::nullopt);
  CHECK(CheckUrlTarget("gopher", "example.com", plain) == "scheme \"gopher\" is not allowed; only http and https are");
  CHECK(CheckUrlTarget("", "example.com", plain).has_value());

  CHECK(CheckUrlTarget("https", "127.0.0.1", strict) ==
        "127.0.0.1 is loopback (127.0.0.0/8); not in the policy's allow list");
  CHECK(CheckUrlTarget("https", "0x7f.1", strict) ==
        "0x7f.1 (127.0.0.1) is loopback (127.0.0.0/8); not in the policy's allow list");
  CHECK(CheckUrlTarget("https", "[::1]", strict) == "[::1] is IPv6 loopback (::1); not in the policy's allow list");
  CHECK(Has(CheckUrlTarget("https", "169.254.169.254", strict), "cloud metadata"));
  CHECK(Has(CheckUrlTarget("https", "[::ffff:a9fe:a9fe]", strict), "(::ffff:169.254.169.254) is IPv4-mapped"));
  CHECK(Has(CheckUrlTarget("https", "2130706433", strict), "2130706433 (127.0.0.1) is loopback"));
  CHECK(Has(CheckUrlTarget("https", "0", strict), "unspecified"));
  CHECK(Has(CheckUrlTarget("https", "10.0.0.1", strict), "private (10.0.0.0/8)"));
  CHECK(CheckUrlTarget("https", "172.32.0.1", strict) == std::nullopt);
  CHECK(CheckUrlTarget("https", "100.128.0.1", strict) == std::nullopt);

  // Not literals and not valid names: blocked before any DNS lookup.
  CHECK(CheckUrlTarget("https", "", strict) == "the URL has no host");
  CHECK(CheckUrlTarget("https", "fe80::1%eth0", strict) == "fe80::1%eth0 is not a valid host name");
  CHECK(Has(CheckUrlTarget("https", "[fe80::1%25eth0]", strict), "is not a valid host name"));
  CHECK(Has(CheckUrlTarget("https", "[127.0.0.1]", strict), "is not a valid host name"));
  CHECK(Has(CheckUrlTarget("https", "127.0.0.1 x", strict), "is not a valid host name"));
  CHECK(Has(CheckUrlTarget("https", "example.com:443", strict), "is not a valid host name"));
  CHECK(Has(CheckUrlTarget("https", "%31%32%37.0.0.1", strict), "is not a valid host name"));
  CHECK(Has(CheckUrlTarget("https", "a..b", strict), "is not a valid host name"));
  CHECK(Has(CheckUrlTarget("https", "b\xc3\xbc" "cher.example", strict), "b\\xc3\\xbccher.example is not"));
  CHECK(Has(CheckUrlTarget("https", std::string(64, 'a') + ".com", strict), "is not a valid host name"));
  CHECK(CheckUrlTarget("https", std::string(63, 'a') + ".com", strict) == std::nullopt);
  // Legacy numbers that are not valid IPv4 are host names, decided after DNS.
  CHECK(CheckUrlTarget("https", "256.1.1.1", strict) == std::nullopt);
  CHECK(CheckUrlTarget("https", "1.2.3.4.5", strict) == std::nullopt);
  // Names resolving to internal addresses are caught by CheckConnectAddress.
  CHECK(CheckUrlTarget("https", "localhost", strict) == std::nullopt);

  // Messages never carry raw control bytes, and stay short.
  const std::string nasty = std::string("evil\r\nX-Injected: 1\0", 21) + std::string(5000, 'z');
  const auto message = CheckUrlTarget("https", nasty, strict);
  REQUIRE(message.has_value());
  CHECK(message->find('\r') == std::string::npos);
  CHECK(message->find('\n') == std::string::npos);
  CHECK(message->find('\0') == std::string::npos);
  CHECK(message->size() < 400);
}

TEST_CASE("netguard: allow list") {
  EndpointRules rules;
  rules.allow_cidrs = {Block("127.0.0.0/8"), Block("fd00:1::/32")};
  rules.allow_hosts = {"localhost", "*.internal.example", "Upper.Example."};

  // CIDRs for literals.
  CHECK(CheckUrlTarget("https", "127.0.0.1", rules) == std::nullopt);
  CHECK(CheckUrlTarget("https", "0x7f.1", rules) == std::nullopt);
  CHECK(CheckUrlTarget("https", "[::ffff:127.0.0.1]", rules) == std::nullopt);  // mapped meets IPv4 block
  CHECK(CheckUrlTarget("https", "[fd00:1::5]", rules) == std::nullopt);
  CHECK(Has(CheckUrlTarget("https", "[fd00:2::5]", rules), "IPv6 unique local"));
  CHECK(CheckUrlTarget("https", "10.0.0.1", rules) ==
        "10.0.0.1 is private (10.0.0.0/8); not in the policy's allow list");
  CHECK(Has(CheckUrlTarget("https", "[::1]", rules), "IPv6 loopback"));  // 127/8 is not ::1

  // CIDRs for resolved addresses, whatever the name.
  CHECK(CheckConnectAddress(Ip("127.0.0.1"), "anything.example", rules) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("::ffff:127.0.0.2"), "anything.example", rules) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "anything.example", rules) ==
        "address 10.0.0.1 of anything.example is private (10.0.0.0/8); not in the policy's allow list");

  // Host names.
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "localhost", rules) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("::1"), "LOCALHOST.", rules) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "a.internal.example", rules) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "a.b.internal.example", rules) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "A.Internal.Example.", rules) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "upper.example", rules) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "internal.example", rules).has_value());
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "internal.example.evil.com", rules).has_value());
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "xinternal.example", rules).has_value());
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), ".internal.example", rules).has_value());
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "localhost.evil.com", rules).has_value());
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "mylocalhost", rules).has_value());
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "", rules) ==
        "address 10.0.0.1 is private (10.0.0.0/8); not in the policy's allow list");
  // allow_hosts never applies to IP literals.
  EndpointRules literal_host;
  literal_host.allow_hosts = {"10.0.0.1", "*.0.0.1"};
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "10.0.0.1", literal_host).has_value());
  CHECK(CheckConnectAddress(Ip("10.0.0.1"), "10.0.0.1", rules).has_value());
  // Degenerate patterns match nothing.
  EndpointRules degenerate;
  degenerate.allow_hosts = {"", "*", "*.", ".", "*.*"};
  for (const char* host : {"a", "a.b", "*", "", "x.*"}) {
    CAPTURE(host);
    CHECK(CheckConnectAddress(Ip("10.0.0.1"), host, degenerate).has_value());
  }

  // Global addresses need no allow list.
  const EndpointRules none;
  CHECK(CheckConnectAddress(Ip("8.8.8.8"), "dns.google", none) == std::nullopt);
  CHECK(CheckConnectAddress(Ip("2001:4860:4860::8888"), "dns.google", none) == std::nullopt);
  CHECK(Has(CheckConnectAddress(Ip("169.254.169.254"), "rebind.example", none),
            "address 169.254.169.254 of rebind.example is link-local"));
  CHECK(Has(CheckConnectAddress(Ip("::ffff:10.1.1.1"), "a.example", none),
            "address ::ffff:10.1.1.1 of a.example is IPv4-mapped"));
  CHECK(CheckConnectAddress(IpAddress{}, "a.example", none).has_value());
}

TEST_CASE("netguard: FromSockaddr") {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(443);
  REQUIRE(inet_pton(AF_INET, "169.254.169.254", &in.sin_addr) == 1);
  const auto v4 = FromSockaddr(reinterpret_cast<const sockaddr*>(&in), sizeof in);
  REQUIRE(v4.has_value());
  CHECK(*v4 == Ip("169.254.169.254"));
  CHECK_FALSE(FromSockaddr(reinterpret_cast<const sockaddr*>(&in), sizeof in - 1).has_value());

  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_scope_id = 2;
  REQUIRE(inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr) == 1);
  const auto v6 = FromSockaddr(reinterpret_cast<const sockaddr*>(&in6), sizeof in6);
  REQUIRE(v6.has_value());
  CHECK(*v6 == Ip("fe80::1"));
  CHECK_FALSE(FromSockaddr(reinterpret_cast<const sockaddr*>(&in6), sizeof(sockaddr_in)).has_value());

  sockaddr other{};
  other.sa_family = AF_UNIX;
  CHECK_FALSE(FromSockaddr(&other, sizeof other).has_value());
  CHECK_FALSE(FromSockaddr(nullptr, 0).has_value());
}

TEST_CASE("netguard: malformed and hostile input never crashes") {
  EndpointRules rules;
  rules.require_https = false;
  rules.allow_hosts = {"*.internal.example"};
  std::vector<std::string> inputs = {
      std::string(100000, '1'),
      std::string(100000, '.'),
      std::string(100000, ':'),
      "[" + std::string(100000, ':') + "]",
      std::string(50000, '0') + "x1",
      "0x" + std::string(100000, 'f'),
      "0x" + std::string(100000, '0') + "7f000001",
      std::string(100000, '0') + "1",
      "1." + std::string(100000, '9'),
      std::string("\0\0\0\0", 4),
      std::string("127.0.0.1\0evil.com", 18),
      "\xff\xfe\xfd",
      "[::1]]",
      "[[::1]]",
  };
  for (const std::string& input : inputs) {
    const auto address = ParseIpLiteral(input);
    if (address) NonGlobalReason(*address);
    const auto message = CheckUrlTarget("http", input, rules);
    if (message) CHECK(message->size() < 1000);
    CheckConnectAddress(Ip("10.0.0.1"), input, rules);
  }
  // Leading zeros are fine in legacy numbers, as browsers have them.
  CHECK(ParseIpLiteral("0x" + std::string(100000, '0') + "7f000001") == Ip("127.0.0.1"));
  CHECK(ParseIpLiteral(std::string(100000, '0') + "1") == Ip("0.0.0.1"));
  CHECK_FALSE(ParseIpLiteral(std::string("127.0.0.1\0evil.com", 18)).has_value());
}

TEST_CASE("netguard: randomized parsing") {
  std::mt19937 random(20240611);
  const std::string alphabet = "0123456789abcdefxX.:[]%fF ";
  const EndpointRules rules;
  for (int round = 0; round < 200000; ++round) {
    const std::size_t length = random() % 24;
    std::string text;
    for (std::size_t i = 0; i < length; ++i) {
      if (round % 4 == 0) {
        text += static_cast<char>(random() & 0xff);  // raw bytes
      } else {
        text += alphabet[random() % alphabet.size()];
      }
    }
    const auto address = ParseIpLiteral(text);
    CheckUrlTarget("https", text, rules);
    if (address) {
      CAPTURE(text);
      NonGlobalReason(*address);
      const auto again = ParseIpLiteral(ToString(*address));
      REQUIRE(again.has_value());
      CHECK(*again == *address);
    }
  }
}

TEST_CASE("netguard: ToString round-trips random addresses") {
  std::mt19937 random(7);
  for (int round = 0; round < 50000; ++round) {
    IpAddress v4{AF_INET, {}};
    for (std::size_t i = 0; i < 4; ++i) v4.bytes[i] = static_cast<std::uint8_t>(random());
    const std::string text = ToString(v4);
    CAPTURE(text);
    REQUIRE(ParseIpLiteral(text) == v4);
    // The dotted quad is the plain one inet_pton would also write.
    char buffer[INET_ADDRSTRLEN] = {};
    REQUIRE(inet_ntop(AF_INET, v4.bytes.data(), buffer, sizeof buffer) != nullptr);
    CHECK(text == buffer);

    IpAddress v6{AF_INET6, {}};
    for (std::size_t i = 0; i < 16; i += 2) {
      if (random() % 2 == 0) continue;  // many zero groups, to exercise "::"
      v6.bytes[i] = static_cast<std::uint8_t>(random() % 3 == 0 ? random() : 0);
      v6.bytes[i + 1] = static_cast<std::uint8_t>(random());
    }
    if (round % 10 == 0) {  // IPv4-mapped
      v6.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4.bytes[0], v4.bytes[1], v4.bytes[2], v4.bytes[3]};
    }
    const std::string text6 = ToString(v6);
    CAPTURE(text6);
    REQUIRE(ParseIpLiteral(text6) == v6);
    REQUIRE(ParseIpLiteral("[" + text6 + "]") == v6);
    REQUIRE(ParseCidr(text6 + "/128").has_value());
    unsigned char parsed[16] = {};
    REQUIRE(inet_pton(AF_INET6, text6.c_str(), parsed) == 1);
    CHECK(std::memcmp(parsed, v6.bytes.data(), 16) == 0);
  }
}

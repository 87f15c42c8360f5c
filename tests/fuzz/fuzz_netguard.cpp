// libFuzzer target: URL host and address checks (SSRF guard) on arbitrary input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "netguard/address_policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace ng = pgcourier::netguard;
  if (auto ip = ng::ParseIpLiteral(text)) {
    // Every literal round-trips through its canonical form, and is judged the same way.
    const auto again = ng::ParseIpLiteral(ng::ToString(*ip));
    if (!again || !(*again == *ip)) __builtin_trap();
    (void)ng::NonGlobalReason(*ip);
  }
  if (auto cidr = ng::ParseCidr(text)) {
    const auto again = ng::ParseCidr(ng::ToString(*cidr));
    if (!again || !(*again == *cidr)) __builtin_trap();
  }
  ng::EndpointRules strict;
  ng::EndpointRules local;
  local.require_https = false;
  local.allow_cidrs.push_back(*ng::ParseCidr("127.0.0.0/8"));
  local.allow_hosts.push_back("*.svc.internal");
  const auto split = text.find('\n');
  const std::string_view scheme = split == std::string_view::npos ? "https" : text.substr(0, split);
  const std::string_view host = split == std::string_view::npos ? text : text.substr(split + 1);
  (void)ng::CheckUrlTarget(scheme, host, strict);
  (void)ng::CheckUrlTarget(scheme, host, local);
  return 0;
}

#include "netguard/egress.hpp"

#include <algorithm>

namespace pgcourier::netguard {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerAscii(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), Lower);
  return out;
}

bool HasNonAscii(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// A plainly written address: what ParseCidr accepts without a prefix length,
// with brackets allowed around IPv6.
std::optional<IpAddress> PlainAddress(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.find('/') != std::string_view::npos) return std::nullopt;
  const auto cidr = ParseCidr(text);
  if (!cidr) return std::nullopt;
  return IpAddress{cidr->family, cidr->bytes};
}

}  // namespace

std::optional<std::string> AllowOnlyEntryProblem(std::string_view entry) {
  if (HasNonAscii(entry)) {
    return "expected the IDNA ASCII form (like xn--bcher-kva.example) of an internationalized name";
  }
  if (PlainAddress(entry)) return std::nullopt;
  if (entry.find('/') != std::string_view::npos) {
    return "expected a host name or an address, not an address block (address blocks go in allow_cidrs, "
           "which allow_only_hosts does not replace)";
  }
  if (ParseIpLiteral(entry)) {
    return "expected an IP address written plainly (like 203.0.113.7 or 2001:db8::1), not a legacy spelling";
  }
  const std::string_view name = entry.substr(0, 2) == "*." ? entry.substr(2) : entry;
  if (name.empty() || name.find('*') != std::string_view::npos || !IsHostName(name) || ParseIpLiteral(name)) {
    return "expected a host name (like api.vendor.example), a pattern like *.vendor.example, or an IP address";
  }
  return std::nullopt;
}

std::optional<EgressProxy> ParseProxyUrl(std::string_view text, std::string& problem) {
  const std::size_t scheme_end = text.find("://");
  const std::string scheme = LowerAscii(text.substr(0, scheme_end == std::string_view::npos ? 0 : scheme_end));
  if (scheme_end == std::string_view::npos || scheme.empty()) {
    problem = "expected a proxy URL like http://egress.internal:3128";
    return std::nullopt;
  }
  if (scheme != "http") {
    problem = scheme == "https" ? "an https:// proxy (TLS to the proxy) is not supported; use http://HOST:PORT "
                                  "(requests to https destinations still go through a CONNECT tunnel with TLS "
                                  "to the destination)"
                                : "only HTTP proxies are supported (http://HOST:PORT), not " + scheme + "://";
    return std::nullopt;
  }
  std::string_view rest = text.substr(scheme_end + 3);
  const std::size_t authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority.find('@') != std::string_view::npos) {
    // Never echo it: what precedes '@' is a user name and password.
    problem = "the proxy URL must not carry credentials; put \"user:password\" in a file named by "
              "proxy_credentials_file, or in an environment variable named by proxy_credentials_env";
    return std::nullopt;
  }
  if (authority_end != std::string_view::npos && rest.substr(authority_end) != "/") {
    problem = "expected only http://HOST:PORT (no path, query or fragment)";
    return std::nullopt;
  }
  std::string_view host;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos || close + 1 >= authority.size() || authority[close + 1] != ':') {
      problem = "expected http://[IPV6]:PORT for an IPv6 proxy address";
      return std::nullopt;
    }
    host = authority.substr(0, close + 1);
    port_text = authority.substr(close + 2);
  } else {
    const std::size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos) {
      problem = "the proxy URL needs an explicit port (like http://egress.internal:3128)";
      return std::nullopt;
    }
    host = authority.substr(0, colon);
    port_text = authority.substr(colon + 1);
  }
  const bool bracketed = !host.empty() && host.front() == '[';
  const bool host_ok = bracketed ? PlainAddress(host).has_value()
                                 : PlainAddress(host).has_value() || (IsHostName(host) && !ParseIpLiteral(host));
  if (!host_ok) {
    problem = "the proxy's host must be a host name, a dotted quad or a bracketed IPv6 address";
    return std::nullopt;
  }
  long port = 0;
  const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                      std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) port = std::stol(std::string(port_text));
  if (!digits || port < 1 || port > 65535) {
    problem = "the proxy's port must be a number from 1 to 65535";
    return std::nullopt;
  }
  EgressProxy proxy;
  proxy.host = LowerAscii(host);
  if (!bracketed && proxy.host.size() > 1 && proxy.host.back() == '.') proxy.host.pop_back();
  proxy.port = static_cast<int>(port);
  proxy.url = "http://" + proxy.host + ":" + std::to_string(proxy.port);
  return proxy;
}

EndpointRules CompileEndpointRules(const model::Policy::Endpoint& endpoint) {
  EndpointRules rules;
  rules.require_https = endpoint.require_https;
  for (const auto& text : endpoint.allow_cidrs) {
    if (auto cidr = ParseCidr(text)) rules.allow_cidrs.push_back(*cidr);
  }
  rules.allow_hosts = endpoint.allow_hosts;
  rules.allow_only = !endpoint.allow_only_hosts.empty();
  for (const auto& entry : endpoint.allow_only_hosts) {
    if (AllowOnlyEntryProblem(entry)) continue;
    if (auto address = PlainAddress(entry)) {
      rules.allow_only_addresses.push_back(*address);
    } else {
      rules.allow_only_hosts.push_back(LowerAscii(entry));
    }
  }
  if (!endpoint.proxy.empty()) {
    std::string problem;
    if (auto proxy = ParseProxyUrl(endpoint.proxy, problem)) {
      rules.proxy = std::move(*proxy);
      rules.proxy.user = endpoint.proxy_user;
      rules.proxy.password = endpoint.proxy_password;
    } else {
      // Validated at load; a hand-built policy with a bad proxy must not
      // silently connect directly: refuse every destination instead.
      rules.allow_only = true;
      rules.allow_only_hosts.clear();
      rules.allow_only_addresses.clear();
    }
  }
  return rules;
}

}  // namespace pgcourier::netguard

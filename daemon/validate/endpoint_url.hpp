// Validation at the door: the URL of a subscription or connection, and the
// endpoint rules of the policy it names, checked before anything is written
// (pgcourierctl today, an HTTP gateway later).
//
// ParseEndpointUrl applies the rules of courier.check_endpoint_url()
// (sql/schema/50_management.sql) in the same order and with the same words,
// so a URL refused here is refused there too and an operator reads one
// explanation. Beyond what SQL can do, it
//   - converts a Unicode host to its IDNA ASCII form (libidn2, UTS #46
//     non-transitional, as browsers do): the daemon can only reach ASCII
//     host names, and the punycode form is what an operator should see;
//   - refuses a label that mixes Latin, Greek and Cyrillic letters (the
//     look-alikes of another name), and xn-- labels that are not valid;
//   - refuses IP addresses in legacy spellings (2130706433, 0x7f.1, 127.1),
//     naming the address they stand for (netguard::ParseIpLiteral decides,
//     the same parser the daemon uses), and writes IPv6 literals in their
//     canonical form.
// CheckDestination then asks netguard::CheckUrlTarget, with the rules of the
// policy's endpoint section, whether the daemon would send to it at all
// (require_https, loopback, private and metadata addresses, allow lists).
//
// Pure functions (no DNS, no I/O); thread-safe. libidn2 is linked by this
// module only.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/policy.hpp"
#include "netguard/address_policy.hpp"

namespace pgcourier::validate {

struct EndpointUrl {
  std::string url;     // as it is to be stored: scheme lower-case, host lower-case ASCII (IDNA) or canonical IP
  std::string scheme;  // http or https
  std::string host;    // without port; IPv6 in brackets ("[::1]"), as netguard::CheckUrlTarget takes it
  // Why `url` differs from the text given ("host bücher.example is stored in its
  // IDNA ASCII form xn--bcher-kva.example"); empty when it does not.
  std::string rewritten;
};

struct UrlProblem {
  std::string message;  // what is wrong, without the field's name ("the URL contains a space; ...")
  std::string hint;     // how to do it instead; may be empty
};

struct UrlCheck {
  std::optional<EndpointUrl> url;  // set when the URL is acceptable
  UrlProblem problem;              // set otherwise
};

// Untrusted text for a message: as a JSON string (quotes around it, control
// characters and quotes escaped), cut after 64 characters.
std::string QuoteUntrusted(std::string_view text);

// The checks above; `text` is what the operator typed.
UrlCheck ParseEndpointUrl(std::string_view text);

// Whether the daemon would contact the URL under `rules` (a policy's:
// netguard::CompileEndpointRules, the daemon's own, allow_only_hosts included): nullopt when it
// would, else netguard's reason ("https is required by the policy",
// "127.0.0.1 is loopback (127.0.0.0/8); not in the policy's allow list").
// Host names are checked for syntax only: their addresses are checked by the
// daemon at connect time.
std::optional<std::string> CheckDestination(const EndpointUrl& url, const netguard::EndpointRules& rules);

}  // namespace pgcourier::validate

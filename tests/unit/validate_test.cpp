// validate/: the URL and identifier checks at the door (pgcourierctl), attacked
// like a hostile tenant would, and kept in step with courier.check_endpoint_url
// (the same messages; tests/e2e/test_management_sql.py checks the SQL side).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "netguard/egress.hpp"
#include "validate/endpoint_url.hpp"
#include "validate/identifiers.hpp"

using namespace pgcourier;

namespace {

// The problem's message, or "" when the URL is accepted.
std::string Problem(const std::string& url) {
  const auto checked = validate::ParseEndpointUrl(url);
  return checked.url ? std::string() : checked.problem.message;
}

std::string Stored(const std::string& url) {
  const auto checked = validate::ParseEndpointUrl(url);
  REQUIRE_MESSAGE(checked.url, checked.problem.message);
  return checked.url->url;
}

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("hostile URLs are refused with the reason courier.check_endpoint_url gives") {
  const struct {
    std::string url;
    std::string message;
  } cases[] = {
      {"not a url", "the URL contains a space; percent-encode it as %20"},
      {"http://h/a\r\nX-Injected: 1", "the URL contains the control character U+000D"},
      {std::string("http://h/a\0b", 12), "the URL contains the control character U+0000"},
      {"http://h/a\tb", "the URL contains the control character U+0009"},
      {"http://h/\x7f", "the URL contains the control character U+007F"},
      {"http://user:pw@h/", "user:password@ is not allowed in a URL"},
      {"http://user@h/", "user:password@ is not allowed in a URL"},
      {"ftp://files.example.com/", "scheme \"ftp\" is not allowed; only http and https are"},
      {"javascript:alert(1)", "scheme \"javascript\" is not allowed"},
      {"//127.0.0.1/hook", "\"//127.0.0.1/hook\" is not an absolute URL"},
      {"http:example.com", "expected // after http:"},
      {"http://", "the URL has no host"},
      {"http:///path", "the URL has no host"},
      {"http://hooks.example.com./", "host \"hooks.example.com.\" ends with a dot"},
      {"http://a..b/", "has an empty label"},
      {"http://h_!/", "is not a valid host name"},
      {"http://[::1/x", "is not a valid IPv6 literal"},
      {"http://[fe80::1%25eth0]/", "is not a valid IPv6 literal"},
      {"http://h:99999/", "port \"99999\" is not a number from 1 to 65535"},
      {"http://h:0/", "port \"0\" is not a number"},
      {"http://h/x#f", "the URL has a fragment"},
      {"http://h/a\\b", "the URL contains a backslash"},
      {"http://h/bücher", "the URL contains the non-ASCII character \"ü\" in its path or query"},
      {"http://" + std::string(64, 'a') + ".example/", "longer than 63 characters"},
      {"http://h/" + std::string(10240, 'a'), "the URL is 10249 bytes long; at most 2048 are allowed"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.url);
    CHECK(Contains(Problem(c.url), c.message));
  }
}

TEST_CASE("userinfo is refused with a hint to authenticate by the signature instead") {
  const auto checked = validate::ParseEndpointUrl("https://user:secret@hooks.example.com/in");
  REQUIRE_FALSE(checked.url);
  CHECK(Contains(checked.problem.hint, "Standard Webhooks signature"));
  CHECK_FALSE(Contains(checked.problem.message, "secret"));  // the credential is not repeated
}

TEST_CASE("IP addresses in legacy spellings are refused naming the address they stand for") {
  CHECK(Problem("http://2130706433/") == "host \"2130706433\" is an IP address in a legacy spelling; write it as 127.0.0.1");
  CHECK(Contains(Problem("http://0x7f.1/"), "write it as 127.0.0.1"));
  CHECK(Contains(Problem("http://0177.0.0.1/"), "write it as 127.0.0.1"));
  CHECK(Contains(Problem("http://127.1/"), "write it as 127.0.0.1"));
  CHECK(Contains(Problem("http://08.1/"), "is an IP address in a legacy spelling (or not a valid one)"));
  CHECK(Contains(Problem("http://example.123/"), "(or not a valid one)"));
  CHECK(Stored("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x");
}

TEST_CASE("IPv6 literals are stored in their canonical form, IPv4-mapped ones included") {
  CHECK(Stored("http://[0:0:0:0:0:0:0:1]:9/x") == "http://[::1]:9/x");
  CHECK(Stored("http://[::FFFF:169.254.169.254]/") == "http://[::ffff:169.254.169.254]/");
}

TEST_CASE("Unicode hosts are stored in their IDNA ASCII form; look-alike mixes and bad punycode are refused") {
  const auto checked = validate::ParseEndpointUrl("http://Bücher.example/in?q=1");
  REQUIRE(checked.url);
  CHECK(checked.url->url == "http://xn--bcher-kva.example/in?q=1");
  CHECK(checked.url->host == "xn--bcher-kva.example");
  CHECK(Contains(checked.url->rewritten, "IDNA ASCII form xn--bcher-kva.example"));
  CHECK(Stored("https://例え.テスト/") == "https://xn--r8jz45g.xn--zckzah/");
  // Cyrillic р, а, у with a Latin l: "paypal" to the eye.
  CHECK(Contains(Problem("http://раураl.com/"), "mixes Cyrillic and Latin letters"));
  CHECK(Contains(Problem("http://xn--zz.com/"), "host label \"xn--zz\" is not valid IDNA"));
  CHECK(Contains(Problem("http://a\xff" "b.com/"), "is not valid UTF-8"));
  CHECK(Contains(Problem("http://\xe2\x98\x83.com/"), "has no IDNA ASCII form (string contains a disallowed"));  // a snowman
  // UTS #46 maps what browsers map: a zero-width space disappears (and the note says what is stored).
  CHECK(Stored("http://a\xe2\x80\x8b" "b.com/") == "http://ab.com/");
  CHECK(Stored("http://xn--bcher-kva.example/") == "http://xn--bcher-kva.example/");
}

TEST_CASE("scheme and host are stored in lower case; the path is kept as given") {
  const auto checked = validate::ParseEndpointUrl("HTTPS://Hooks.Example.COM/In?Token=A");
  REQUIRE(checked.url);
  CHECK(checked.url->url == "https://hooks.example.com/In?Token=A");
  CHECK(checked.url->rewritten == "the scheme and host are stored in lower case");
  CHECK(validate::ParseEndpointUrl("https://hooks.example.com/in").url->rewritten.empty());
}

TEST_CASE("the policy's endpoint rules decide with netguard, as the daemon does") {
  model::Policy::Endpoint strict;  // the production default: https, nothing internal
  model::Policy::Endpoint local;
  local.require_https = false;
  local.allow_cidrs = {"127.0.0.0/8"};
  const auto url = [](const std::string& text) { return *validate::ParseEndpointUrl(text).url; };
  const auto strict_rules = netguard::CompileEndpointRules(strict);
  const auto local_rules = netguard::CompileEndpointRules(local);
  CHECK(validate::CheckDestination(url("http://hooks.example.com/"), strict_rules) == "https is required by the policy");
  CHECK_FALSE(validate::CheckDestination(url("https://hooks.example.com/"), strict_rules));
  CHECK(Contains(*validate::CheckDestination(url("https://169.254.169.254/latest"), strict_rules), "link-local"));
  CHECK(Contains(*validate::CheckDestination(url("https://[::ffff:169.254.169.254]/"), strict_rules),
                 "169.254.169.254"));
  CHECK(Contains(*validate::CheckDestination(url("https://127.0.0.1/"), strict_rules), "loopback"));
  CHECK_FALSE(validate::CheckDestination(url("http://127.0.0.1:8080/hook"), local_rules));
  CHECK(Contains(*validate::CheckDestination(url("http://10.0.0.1/"), local_rules), "private"));
  // Controlled egress narrows: with allow_only_hosts only those hosts pass, however global the others are
  // (the CLI and the gateway used a copy of these rules that forgot allow_only_hosts).
  model::Policy::Endpoint egress;
  egress.allow_only_hosts = {"api.vendor.example"};
  const auto egress_rules = netguard::CompileEndpointRules(egress);
  CHECK_FALSE(validate::CheckDestination(url("https://api.vendor.example/v1"), egress_rules));
  REQUIRE(validate::CheckDestination(url("https://hooks.example.com/"), egress_rules));
}

TEST_CASE("tenant ids follow the documented grammar") {
  for (const std::string& ok : std::vector<std::string>{"acme", "A", "9", "tenant-1:eu.prod_2", std::string(128, 'a')}) {
    CAPTURE(ok);
    CHECK_FALSE(validate::IdentifierProblem(ok));
  }
  for (const std::string& bad : std::vector<std::string>{"", "   ", " acme", "acme ", "a b", "a/b", "ac\nme", "Ünï",
                                                         "-acme", ".acme", "a;b", std::string(129, 'a')}) {
    CAPTURE(bad);
    const auto problem = validate::IdentifierProblem(bad);
    REQUIRE(problem);
    CHECK(Contains(*problem, "is not valid: 1 to 128 characters"));
    CHECK_FALSE(Contains(*problem, "\n"));
  }
}

TEST_CASE("untrusted text in messages is quoted, escaped and cut") {
  CHECK(validate::QuoteUntrusted("a\"b\\c\r\n") == "\"a\\\"b\\\\c\\r\\n\"");
  CHECK(validate::QuoteUntrusted(std::string("\x01", 1)) == "\"\\u0001\"");
  CHECK(validate::QuoteUntrusted(std::string(100, 'x')) == "\"" + std::string(64, 'x') + "\"...");
  CHECK(validate::QuoteUntrusted("\xff") == "\"\xEF\xBF\xBD\"");
}

// Tests for controlled egress: allow_only_hosts (its entries, its matching and
// how it combines with the address rules), the egress proxy URL, the proxy
// credentials from a file or the environment, and how the policies file
// reports each mistake (file, line, YAML path, what was expected).
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "config/policies.hpp"
#include "netguard/address_policy.hpp"
#include "netguard/egress.hpp"

namespace {

using pgcourier::config::ConfigError;
using pgcourier::config::ParsePolicies;
using pgcourier::netguard::AllowOnlyEntryProblem;
using pgcourier::netguard::CheckConnectAddress;
using pgcourier::netguard::CheckUrlTarget;
using pgcourier::netguard::CompileEndpointRules;
using pgcourier::netguard::EndpointRules;
using pgcourier::netguard::ParseIpLiteral;
using pgcourier::netguard::ParseProxyUrl;

std::string AllProblems(const std::string& yaml) {
  try {
    ParsePolicies(yaml, "p.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return {};
}

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

EndpointRules RulesOf(std::vector<std::string> allow_only, std::vector<std::string> cidrs = {}) {
  pgcourier::model::Policy::Endpoint endpoint;
  endpoint.require_https = false;
  endpoint.allow_only_hosts = std::move(allow_only);
  endpoint.allow_cidrs = std::move(cidrs);
  return CompileEndpointRules(endpoint);
}

// A file in a fresh temporary folder, removed with the object.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char dir[] = "/tmp/pgcourier-egress-test.XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    dir_ = dir;
    path_ = dir_ + "/proxy.cred";
    std::ofstream(path_) << content;
    chmod(path_.c_str(), 0600);
  }
  ~TempFile() {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace

TEST_CASE("allow_only_hosts entries: names, *.suffix patterns and plainly written addresses") {
  for (const char* ok : {"api.vendor.example", "API.Vendor.Example", "*.vendor.example", "localhost",
                         "xn--bcher-kva.example", "203.0.113.7", "2001:db8::1", "[2001:db8::1]", "host_1.example."}) {
    CAPTURE(ok);
    CHECK(AllowOnlyEntryProblem(ok) == std::nullopt);
  }
  CHECK(AllowOnlyEntryProblem("bücher.example")->find("IDNA ASCII form") != std::string::npos);
  CHECK(AllowOnlyEntryProblem("10.0.0.0/8")->find("allow_cidrs") != std::string::npos);
  CHECK(AllowOnlyEntryProblem("0x7f.1")->find("not a legacy spelling") != std::string::npos);
  CHECK(AllowOnlyEntryProblem("127.1")->find("not a legacy spelling") != std::string::npos);
  for (const char* bad : {"", "*", "*.", "a.*.example", "**.example", "bad host", "a..b", "*.0.0.1", "http://x",
                          "x:443", ".example"}) {
    CAPTURE(bad);
    CHECK(AllowOnlyEntryProblem(bad).has_value());
  }
}

TEST_CASE("allow_only_hosts refuses every other destination before anything is sent, public ones included") {
  const EndpointRules rules = RulesOf({"api.vendor.example", "*.hooks.partner.example", "203.0.113.7"});
  CHECK(CheckUrlTarget("https", "api.vendor.example", rules) == std::nullopt);
  CHECK(CheckUrlTarget("https", "API.VENDOR.EXAMPLE.", rules) == std::nullopt);  // case and one trailing dot
  CHECK(CheckUrlTarget("https", "eu.hooks.partner.example", rules) == std::nullopt);
  CHECK(CheckUrlTarget("https", "a.b.hooks.partner.example", rules) == std::nullopt);
  // "*.suffix" needs one more label, as in allow_hosts.
  CHECK(CheckUrlTarget("https", "hooks.partner.example", rules) ==
        "hooks.partner.example is not in the policy's allow_only_hosts");
  CHECK(CheckUrlTarget("https", "example.com", rules) == "example.com is not in the policy's allow_only_hosts");
  CHECK(CheckUrlTarget("https", "api.vendor.example.evil.com", rules).has_value());
  CHECK(CheckUrlTarget("https", "xapi.vendor.example", rules).has_value());
  CHECK(CheckUrlTarget("https", "evil-hooks.partner.example", rules).has_value());
  // Addresses match however the URL spells them; a public address not listed is refused too.
  CHECK(CheckUrlTarget("https", "203.0.113.7", rules).has_value());  // documentation range: see below
  CHECK(CheckUrlTarget("https", "8.8.8.8", rules) == "8.8.8.8 is not in the policy's allow_only_hosts");
  CHECK(CheckUrlTarget("https", "134744072", rules) ==
        "134744072 (8.8.8.8) is not in the policy's allow_only_hosts");
  // A name never matches an address entry, nor an address a name pattern.
  const EndpointRules by_address = RulesOf({"8.8.8.8", "*.8.8"});
  CHECK(CheckUrlTarget("https", "8.8.8.8", by_address) == std::nullopt);
  CHECK(CheckUrlTarget("https", "0x8.0x8.0x8.0x8", by_address) == std::nullopt);
  CHECK(CheckUrlTarget("https", "[::ffff:8.8.8.8]", by_address) == std::nullopt);
  CHECK(CheckUrlTarget("https", "dns.google", by_address).has_value());
  // Without the key nothing changes.
  CHECK(CheckUrlTarget("https", "example.com", RulesOf({})) == std::nullopt);
  // Scheme and syntax are still judged first.
  pgcourier::model::Policy::Endpoint https_only;
  https_only.allow_only_hosts = {"api.vendor.example"};
  CHECK(CheckUrlTarget("http", "api.vendor.example", CompileEndpointRules(https_only)) ==
        "https is required by the policy");
  CHECK(CheckUrlTarget("https", "bad host", rules) == "bad host is not a valid host name");
}

TEST_CASE("an allow-listed host still meets the private-range rules, unless allow_cidrs lets it") {
  // Listed, and resolving to a private address: refused at connect time.
  const EndpointRules rules = RulesOf({"hooks.internal.example", "127.0.0.1"});
  CHECK(CheckUrlTarget("http", "hooks.internal.example", rules) == std::nullopt);
  CHECK(CheckConnectAddress(*ParseIpLiteral("10.1.2.3"), "hooks.internal.example", rules) ==
        "address 10.1.2.3 of hooks.internal.example is private (10.0.0.0/8); not in the policy's allow list");
  CHECK(CheckUrlTarget("http", "127.0.0.1", rules) ==
        "127.0.0.1 is loopback (127.0.0.0/8); not in the policy's allow list");
  // With allow_cidrs both pass.
  const EndpointRules widened = RulesOf({"hooks.internal.example", "127.0.0.1"}, {"10.0.0.0/8", "127.0.0.0/8"});
  CHECK(CheckConnectAddress(*ParseIpLiteral("10.1.2.3"), "hooks.internal.example", widened) == std::nullopt);
  CHECK(CheckUrlTarget("http", "127.0.0.1", widened) == std::nullopt);
  // allow_cidrs does not widen allow_only_hosts: 127.0.0.2 is in the block but not listed.
  CHECK(CheckUrlTarget("http", "127.0.0.2", widened) == "127.0.0.2 is not in the policy's allow_only_hosts");
}

TEST_CASE("egress proxy URLs: http://HOST:PORT only, never with credentials") {
  std::string problem;
  auto proxy = ParseProxyUrl("http://Egress.Internal:3128/", problem);
  REQUIRE(proxy.has_value());
  CHECK(proxy->url == "http://egress.internal:3128");
  CHECK(proxy->host == "egress.internal");
  CHECK(proxy->port == 3128);
  CHECK(proxy->user.empty());
  proxy = ParseProxyUrl("HTTP://127.0.0.1:8080", problem);
  REQUIRE(proxy.has_value());
  CHECK(proxy->url == "http://127.0.0.1:8080");
  proxy = ParseProxyUrl("http://[::1]:3128", problem);
  REQUIRE(proxy.has_value());
  CHECK(proxy->host == "[::1]");
  CHECK(proxy->url == "http://[::1]:3128");

  struct Bad {
    const char* url;
    const char* says;
  };
  for (const Bad& bad : {Bad{"egress.internal:3128", "expected a proxy URL"},
                         Bad{"https://egress.internal:3128", "https:// proxy"},
                         Bad{"socks5://egress.internal:1080", "only HTTP proxies"},
                         Bad{"http://egress.internal", "explicit port"},
                         Bad{"http://egress.internal:0", "port must be"},
                         Bad{"http://egress.internal:65536", "port must be"},
                         Bad{"http://egress.internal:31x8", "port must be"},
                         Bad{"http://egress.internal:3128/path", "no path"},
                         Bad{"http://egress.internal:3128?x=1", "no path"},
                         Bad{"http://bad host:3128", "host must be"},
                         Bad{"http://0x7f.1:3128", "host must be"},
                         Bad{"http://[::1:3128", "IPv6"},
                         Bad{"http://alice:s3cret@egress.internal:3128", "must not carry credentials"}}) {
    CAPTURE(bad.url);
    problem.clear();
    CHECK_FALSE(ParseProxyUrl(bad.url, problem).has_value());
    CHECK(Has(problem, bad.says));
    CHECK_FALSE(Has(problem, "s3cret"));
  }
}

TEST_CASE("the policies file: allow_only_hosts and proxy are parsed, and every mistake is reported with its place") {
  const auto set = ParsePolicies(R"(policies:
  default:
    endpoint:
      allow_only_hosts: [api.vendor.example, "*.hooks.partner.example", 203.0.113.7]
      proxy: http://Egress.Internal:3128
)",
                                 "p.yaml");
  const auto* p = set.Find("default");
  REQUIRE(p != nullptr);
  CHECK(p->endpoint.allow_only_hosts ==
        std::vector<std::string>{"api.vendor.example", "*.hooks.partner.example", "203.0.113.7"});
  CHECK(p->endpoint.proxy == "http://egress.internal:3128");
  CHECK(p->endpoint.proxy_user.empty());
  const EndpointRules rules = CompileEndpointRules(p->endpoint);
  CHECK(rules.allow_only);
  CHECK(rules.proxy.url == "http://egress.internal:3128");
  CHECK(rules.proxy.port == 3128);

  const std::string all = AllProblems(R"(policies:
  default:
    endpoint:
      allow_only_hosts: []
  second:
    endpoint:
      allow_only_hosts: [ok.example, "bücher.example", 10.0.0.0/8, [nested]]
      proxy: http://alice:s3cret@egress.internal:3128
  third:
    endpoint:
      allow_only_hosts: api.vendor.example
      proxy: [http://egress.internal:3128]
      proxy_credentials_file: /nonexistent/pgcourier/proxy.cred
      proxy_credentials_env: PGCOURIER_TEST_UNSET_VARIABLE
  fourth:
    endpoint:
      proxy_credentials_env: "not a name"
)");
  CAPTURE(all);
  CHECK(Has(all, "p.yaml:4: policies.default.endpoint.allow_only_hosts: an empty list would refuse every destination"));
  CHECK(Has(all, "p.yaml:7: policies.second.endpoint.allow_only_hosts[1]: expected the IDNA ASCII form"));
  CHECK(Has(all, "policies.second.endpoint.allow_only_hosts[2]: expected a host name or an address, not an address block"));
  CHECK(Has(all, "policies.second.endpoint.allow_only_hosts[3]: expected a string, got a list"));
  CHECK(Has(all, "p.yaml:8: policies.second.endpoint.proxy: the proxy URL must not carry credentials; put "
                 "\"user:password\" in a file named by proxy_credentials_file"));
  CHECK_FALSE(Has(all, "s3cret"));
  CHECK_FALSE(Has(all, "alice"));
  CHECK(Has(all, "p.yaml:11: policies.third.endpoint.allow_only_hosts: expected a list"));
  CHECK(Has(all, "p.yaml:12: policies.third.endpoint.proxy: expected a proxy URL like http://egress.internal:3128, "
                 "got a list"));
  CHECK(Has(all, "p.yaml:13: policies.third.endpoint.proxy_credentials_file: cannot read the proxy credentials: "
                 "/nonexistent/pgcourier/proxy.cred"));
  CHECK(Has(all, "p.yaml:14: policies.third.endpoint.proxy_credentials_env: the environment variable "
                 "PGCOURIER_TEST_UNSET_VARIABLE is not set or empty"));
  CHECK(Has(all, "policies.third.endpoint.proxy_credentials_env: cannot be combined with proxy_credentials_file"));
  CHECK(Has(all, "p.yaml:17: policies.fourth.endpoint.proxy_credentials_env: expected an environment variable name"));
  CHECK(Has(all, "policies.fourth.endpoint.proxy_credentials_env: needs endpoint.proxy"));
  CHECK(Has(AllProblems("policies:\n  default:\n    endpoint:\n      allow_only: [x]\n"),
            "p.yaml:4: policies.default.endpoint.allow_only: unknown key (expected one of: require_https, "
            "allow_cidrs, allow_hosts, allow_only_hosts, proxy, proxy_credentials_file, proxy_credentials_env)"));
}

TEST_CASE("proxy credentials come from a file or the environment, and no message repeats them") {
  const TempFile file("alice:pa:ss%41word\n");
  const auto from_file = ParsePolicies("policies:\n  default:\n    endpoint:\n      proxy: http://127.0.0.1:3128\n"
                                       "      proxy_credentials_file: " + file.path() + "\n",
                                       "p.yaml");
  const auto* p = from_file.Find("default");
  REQUIRE(p != nullptr);
  CHECK(p->endpoint.proxy_user == "alice");
  CHECK(p->endpoint.proxy_password == "pa:ss%41word");  // split at the first ':', nothing decoded
  const EndpointRules rules = CompileEndpointRules(p->endpoint);
  CHECK(rules.proxy.user == "alice");
  CHECK(rules.proxy.password == "pa:ss%41word");

  REQUIRE(setenv("PGCOURIER_TEST_PROXY_AUTH", "bob:hunter2", 1) == 0);
  const auto from_env = ParsePolicies("policies:\n  default:\n    endpoint:\n      proxy: http://127.0.0.1:3128\n"
                                      "      proxy_credentials_env: PGCOURIER_TEST_PROXY_AUTH\n",
                                      "p.yaml");
  CHECK(from_env.Find("default")->endpoint.proxy_user == "bob");
  CHECK(from_env.Find("default")->endpoint.proxy_password == "hunter2");

  REQUIRE(setenv("PGCOURIER_TEST_PROXY_AUTH", "no-colon-hunter2", 1) == 0);
  const std::string env_problem = AllProblems("policies:\n  default:\n    endpoint:\n      proxy: http://127.0.0.1:3128\n"
                                              "      proxy_credentials_env: PGCOURIER_TEST_PROXY_AUTH\n");
  CHECK(Has(env_problem, "p.yaml:5: policies.default.endpoint.proxy_credentials_env: the environment variable "
                         "PGCOURIER_TEST_PROXY_AUTH: expected one line \"user:password\""));
  CHECK_FALSE(Has(env_problem, "hunter2"));
  unsetenv("PGCOURIER_TEST_PROXY_AUTH");

  const TempFile two_lines("carol:first\ncarol:second\n");
  const std::string file_problem =
      AllProblems("policies:\n  default:\n    endpoint:\n      proxy: http://127.0.0.1:3128\n"
                  "      proxy_credentials_file: " + two_lines.path() + "\n");
  CHECK(Has(file_problem, "policies.default.endpoint.proxy_credentials_file: " + two_lines.path() +
                              ": expected one line \"user:password\""));
  CHECK_FALSE(Has(file_problem, "first"));
  CHECK_FALSE(Has(file_problem, "second"));
}

TEST_CASE("a hand-built policy with an invalid proxy refuses everything instead of connecting directly") {
  pgcourier::model::Policy::Endpoint endpoint;
  endpoint.require_https = false;
  endpoint.proxy = "socks5://127.0.0.1:1080";
  const EndpointRules rules = CompileEndpointRules(endpoint);
  CHECK_FALSE(rules.proxy.enabled());
  CHECK(CheckUrlTarget("https", "api.vendor.example", rules).has_value());
  CHECK(CheckUrlTarget("https", "8.8.8.8", rules).has_value());
}

// The executor against a real HTTP/1.1 server on 127.0.0.1 (a small
// thread-per-connection server in this file): verbs and bodies on reused
// handles, the max_active cap, max_wait, DropWaiting, AbortAll, timeouts,
// refused connections, the response headers the classifier reads, and
// controlled egress: allow_only_hosts, an egress proxy (plain-proxy and
// CONNECT, its credentials, its refusals, connection reuse with and without it).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/executor.hpp"
#include "netguard/address_policy.hpp"

using namespace std::chrono_literals;
using pgcourier::http::Completion;
using pgcourier::http::Executor;
using pgcourier::http::ExecutorOptions;
using pgcourier::http::Request;
using pgcourier::model::TransportError;

namespace {

struct SeenRequest {
  std::string method;
  std::string path;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

// Answers every request after `delay` with `status`, `extra_headers` and
// `body`, keeping the connection alive. Records what it received and the
// largest number of requests it was answering at once.
class LoopbackServer {
 public:
  std::chrono::milliseconds delay{0};
  int status = 200;
  std::string extra_headers;  // "Name: value\r\n" lines
  std::string body;

  LoopbackServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(listen_fd_, 64) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~LoopbackServer() { Stop(); }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  void Start() {
    acceptor_ = std::thread([this] { Accept(); });
  }
  void Stop() {
    if (stopping_.exchange(true)) return;
    shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : connections_) shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
    close(listen_fd_);
  }

  std::string Url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<SeenRequest> Seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  int MaxConcurrent() const { return max_concurrent_.load(); }
  int Accepted() const { return accepted_.load(); }  // connections accepted so far
  int port() const { return port_; }

 private:
  void Accept() {
    while (!stopping_) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      ++accepted_;
      std::lock_guard lock(mu_);
      connections_.push_back(fd);
      workers_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    std::string buffer;
    char chunk[4096];
    while (!stopping_) {
      std::size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return Close(fd);
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      SeenRequest r;
      const std::string head = buffer.substr(0, header_end);
      const auto line_end = head.find("\r\n");
      const std::string request_line = head.substr(0, line_end);
      const auto sp1 = request_line.find(' ');
      const auto sp2 = request_line.find(' ', sp1 + 1);
      r.method = request_line.substr(0, sp1);
      r.path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      std::size_t pos = line_end;
      while (pos != std::string::npos && pos < head.size()) {
        const auto next = head.find("\r\n", pos + 2);
        const std::string h = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        const auto colon = h.find(':');
        if (colon != std::string::npos) {
          std::string name = h.substr(0, colon);
          std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
          r.headers[name] = h.substr(h.find_first_not_of(' ', colon + 1));
        }
        pos = next;
      }
      std::size_t length = 0;
      if (auto it = r.headers.find("content-length"); it != r.headers.end()) length = std::stoul(it->second);
      buffer.erase(0, header_end + 4);
      while (buffer.size() < length) {
        const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return Close(fd);
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      r.body = buffer.substr(0, length);
      buffer.erase(0, length);
      const int now = ++answering_;
      int seen_max = max_concurrent_.load();
      while (now > seen_max && !max_concurrent_.compare_exchange_weak(seen_max, now)) {
      }
      {
        std::lock_guard lock(mu_);
        seen_.push_back(r);
      }
      // Sleeps in slices so that Stop() is not held up by a long delay.
      const auto until = std::chrono::steady_clock::now() + delay;
      while (!stopping_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
      std::string response = "HTTP/1.1 " + std::to_string(status) + " Status\r\nContent-Length: " +
                             std::to_string(r.method == "HEAD" ? 0 : body.size()) + "\r\n" + extra_headers + "\r\n" +
                             (r.method == "HEAD" ? "" : body);
      --answering_;
      if (send(fd, response.data(), response.size(), MSG_NOSIGNAL) < 0) return Close(fd);
    }
    Close(fd);
  }

  void Close(int fd) {
    std::lock_guard lock(mu_);
    connections_.erase(std::remove(connections_.begin(), connections_.end(), fd), connections_.end());
    close(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> answering_{0};
  std::atomic<int> max_concurrent_{0};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> connections_;   // guarded by mu_
  std::vector<std::thread> workers_;  // guarded by mu_ while the acceptor runs
  std::vector<SeenRequest> seen_;  // guarded by mu_
};

// Waits (up to 20 s) until `count` completions arrived; returns them by token.
std::map<std::uint64_t, Completion> Await(Executor& executor, std::size_t count) {
  std::map<std::uint64_t, Completion> out;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    pollfd p{executor.completion_fd(), POLLIN, 0};
    poll(&p, 1, 100);
    for (auto& c : executor.TakeCompletions()) out.emplace(c.token, std::move(c));
  }
  REQUIRE(out.size() == count);
  return out;
}

Request MakeRequest(std::uint64_t token, std::string url, std::string method = "POST", std::string body = {}) {
  Request r;
  r.token = token;
  r.method = std::move(method);
  r.url = std::move(url);
  r.body = std::move(body);
  r.headers = {"Content-Type: application/json", "X-Token: " + std::to_string(token)};
  return r;
}

// Requests 1..count: a POST of "{}" to url each.
std::vector<Request> Posts(std::uint64_t count, const std::string& url) {
  std::vector<Request> out;
  for (std::uint64_t i = 1; i <= count; ++i) out.push_back(MakeRequest(i, url, "POST", "{}"));
  return out;
}

// An executor with these limits, started.
std::unique_ptr<Executor> Started(int max_active, int max_wait_ms = 0) {
  ExecutorOptions options;
  options.max_active = max_active;
  options.max_wait = pgcourier::model::Millis(max_wait_ms);
  auto executor = std::make_unique<Executor>(options);
  executor->Start();
  return executor;
}

}  // namespace

TEST_CASE("one pooled handle sends each verb with its own body, whatever came before") {
  LoopbackServer server;
  server.Start();
  ExecutorOptions options;
  options.max_connections = 1;
  options.max_active = 1;  // one transfer at a time: every request reuses the same easy handle
  Executor executor(options);
  executor.Start();
  const std::vector<std::pair<std::string, std::string>> sequence = {
      {"POST", "{\"n\":1}"}, {"POST", "{\"n\":2}"}, {"GET", ""},         {"PUT", "{\"n\":4}"},
      {"HEAD", ""},          {"POST", "{\"n\":6}"}, {"DELETE", ""},      {"POST", std::string(3000, 'x')}};
  for (std::size_t i = 0; i < sequence.size(); ++i) {
    std::vector<Request> one;
    one.push_back(MakeRequest(i + 1, server.Url("/r" + std::to_string(i + 1)), sequence[i].first, sequence[i].second));
    executor.Submit(std::move(one));
    auto done = Await(executor, 1);
    CHECK(done.at(i + 1).result.transport_error == TransportError::kNone);
    CHECK(done.at(i + 1).result.status_code == 200);
  }
  const auto seen = server.Seen();
  REQUIRE(seen.size() == sequence.size());
  for (std::size_t i = 0; i < sequence.size(); ++i) {
    INFO("request ", i + 1, " ", sequence[i].first);
    CHECK(seen[i].method == sequence[i].first);
    CHECK(seen[i].path == "/r" + std::to_string(i + 1));
    CHECK(seen[i].body == sequence[i].second);
    CHECK(seen[i].headers.at("x-token") == std::to_string(i + 1));
    CHECK(seen[i].headers.count("expect") == 0);  // no "100 Continue" wait, even for the 3000-byte body
    CHECK(seen[i].headers.at("user-agent") == "pgcourier");
  }
}

TEST_CASE("no more than max_active transfers run at once; the rest start as slots free up") {
  LoopbackServer server;
  server.delay = 150ms;
  server.Start();
  auto started = Started(2);
  Executor& executor = *started;
  executor.Submit(Posts(6, server.Url()));
  const auto done = Await(executor, 6);
  for (const auto& [token, c] : done) {
    INFO("token ", token);
    CHECK(c.result.status_code == 200);
  }
  CHECK(server.Seen().size() == 6);
  CHECK(server.MaxConcurrent() == 2);
  CHECK(executor.in_flight() == 0);
}

TEST_CASE("a request that waits longer than max_wait for a slot comes back unsent") {
  LoopbackServer server;
  server.delay = 1000ms;
  server.Start();
  auto started = Started(1, 100);
  Executor& executor = *started;
  executor.Submit(Posts(3, server.Url()));
  const auto done = Await(executor, 3);
  CHECK(done.at(1).result.status_code == 200);
  for (std::uint64_t token : {2, 3}) {
    INFO("token ", token);
    CHECK(done.at(token).result.transport_error == TransportError::kAborted);
    CHECK(done.at(token).result.error_message.find("released unsent") != std::string::npos);
  }
  CHECK(server.Seen().size() == 1);
}

TEST_CASE("DropWaiting returns the requests not started yet; the running one finishes") {
  LoopbackServer server;
  server.delay = 400ms;
  server.Start();
  auto started = Started(1);
  Executor& executor = *started;
  executor.Submit(Posts(3, server.Url()));
  // The first request is being answered before the others are dropped.
  for (int i = 0; i < 200 && server.Seen().empty(); ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(server.Seen().size() == 1);
  executor.DropWaiting();
  const auto done = Await(executor, 3);
  CHECK(done.at(1).result.status_code == 200);
  CHECK(done.at(2).result.transport_error == TransportError::kAborted);
  CHECK(done.at(3).result.transport_error == TransportError::kAborted);
  CHECK(server.Seen().size() == 1);
}

TEST_CASE("AbortAll completes running and waiting requests with kAborted") {
  LoopbackServer server;
  server.delay = 10000ms;
  server.Start();
  auto started = Started(2);
  Executor& executor = *started;
  executor.Submit(Posts(3, server.Url()));
  for (int i = 0; i < 200 && server.Seen().size() < 2; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(server.Seen().size() == 2);
  executor.AbortAll();
  const auto done = Await(executor, 3);
  for (const auto& [token, c] : done) {
    INFO("token ", token);
    CHECK(c.result.transport_error == TransportError::kAborted);
    CHECK(c.result.status_code == 0);
  }
  CHECK(executor.in_flight() == 0);
}

TEST_CASE("timeouts, refused connections and response headers are reported") {
  LoopbackServer slow;
  slow.delay = 3000ms;
  slow.Start();
  LoopbackServer answering;
  answering.status = 429;
  answering.extra_headers = "Retry-After: 7\r\nLocation: /elsewhere\r\n";
  answering.body = std::string(100, 'b');
  answering.Start();
  // A port nobody listens on: bind one, note it, close it.
  int closed_port = 0;
  {
    LoopbackServer gone;
    closed_port = std::stoi(gone.Url().substr(17));
  }
  Executor executor(ExecutorOptions{});
  executor.Start();
  std::vector<Request> batch;
  batch.push_back(MakeRequest(1, slow.Url(), "POST", "{}"));
  batch.back().request_timeout = pgcourier::model::Millis(200);
  batch.push_back(MakeRequest(2, "http://127.0.0.1:" + std::to_string(closed_port) + "/hook", "POST", "{}"));
  batch.push_back(MakeRequest(3, answering.Url(), "POST", "{}"));
  batch.back().excerpt_bytes = 10;
  executor.Submit(std::move(batch));
  const auto done = Await(executor, 3);
  CHECK(done.at(1).result.transport_error == TransportError::kTimeout);
  CHECK(done.at(2).result.transport_error == TransportError::kConnect);
  CHECK_FALSE(done.at(2).result.error_message.empty());
  const auto& r = done.at(3).result;
  CHECK(r.transport_error == TransportError::kNone);
  CHECK(r.status_code == 429);
  CHECK(r.retry_after == "7");
  CHECK(r.location == "/elsewhere");
  CHECK(r.body_excerpt == std::string(10, 'b'));
}

TEST_CASE("a header or URL that would split the request is refused and nothing reaches the server") {
  LoopbackServer server;
  server.Start();
  Executor executor(ExecutorOptions{});
  executor.Start();
  std::vector<Request> batch;
  // The attack of issue 13: a producer-chosen event id sent as webhook-id,
  // carrying a second header and a smuggled request on the kept-alive connection.
  batch.push_back(MakeRequest(1, server.Url(), "POST", "{}"));
  batch.back().headers.push_back("webhook-id: evt_1\r\nX-Injected: yes\r\n\r\nGET /smuggled-by-producer HTTP/1.1");
  batch.push_back(MakeRequest(2, server.Url(), "POST", "{}"));
  batch.back().headers.push_back(std::string("Idempotency-Key: a\0b", 20));
  batch.push_back(MakeRequest(3, server.Url("/hook\r\nX-Injected: yes"), "POST", "{}"));
  batch.push_back(MakeRequest(4, server.Url(), "POST", "{}"));
  batch.back().headers.push_back("Bad Name: x");
  batch.push_back(MakeRequest(5, server.Url(), "POST", "{}"));  // a good one, after them
  executor.Submit(std::move(batch));
  const auto done = Await(executor, 5);
  for (std::uint64_t token = 1; token <= 4; ++token) {
    CAPTURE(token);
    CHECK(done.at(token).result.transport_error == TransportError::kInvalidRequest);
    CHECK(done.at(token).result.error_message.find("request refused before sending") != std::string::npos);
    CHECK(done.at(token).result.error_message.find("X-Injected") == std::string::npos);  // the value is not quoted
  }
  CHECK(done.at(1).result.error_message.find("webhook-id") != std::string::npos);
  CHECK(done.at(2).result.error_message.find("Idempotency-Key") != std::string::npos);
  CHECK(done.at(5).result.transport_error == TransportError::kNone);
  CHECK(done.at(5).result.status_code == 200);
  const auto seen = server.Seen();
  REQUIRE(seen.size() == 1);  // only the good request; no smuggled second one
  CHECK(seen[0].headers.at("x-token") == "5");
  CHECK(seen[0].headers.count("x-injected") == 0);
}

namespace {

using pgcourier::netguard::EndpointRules;

// Plain http to 127.0.0.0/8 allowed (the test servers), optionally through
// `proxy` (a LoopbackServer playing the proxy: it answers itself, it never
// forwards), optionally only to `allow_only` hosts.
std::shared_ptr<const EndpointRules> LocalRules(const LoopbackServer* proxy = nullptr,
                                                std::vector<std::string> allow_only = {},
                                                const std::string& user = {}, const std::string& password = {}) {
  auto rules = std::make_shared<EndpointRules>();
  rules->require_https = false;
  rules->allow_cidrs = {*pgcourier::netguard::ParseCidr("127.0.0.0/8")};
  if (!allow_only.empty()) {
    rules->allow_only = true;
    rules->allow_only_hosts = std::move(allow_only);
  }
  if (proxy != nullptr) {
    rules->proxy.host = "127.0.0.1";
    rules->proxy.port = proxy->port();
    rules->proxy.url = "http://127.0.0.1:" + std::to_string(proxy->port());
    rules->proxy.user = user;
    rules->proxy.password = password;
  }
  return rules;
}

Completion SendOne(Executor& executor, std::uint64_t token, const std::string& url,
                   std::shared_ptr<const EndpointRules> rules) {
  std::vector<Request> one;
  one.push_back(MakeRequest(token, url, "POST", "{}"));
  one.back().rules = std::move(rules);
  executor.Submit(std::move(one));
  return Await(executor, 1).at(token);
}

int ClosedPort() {
  LoopbackServer gone;
  return gone.port();
}

// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) { setenv(name, value.c_str(), 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("through the egress proxy: plain http goes to the proxy with its credentials; no_proxy is not inherited") {
  LoopbackServer proxy;
  proxy.Start();
  LoopbackServer target;
  target.Start();
  // The environment would send 127.0.0.1 around the proxy; the policy decides, not the environment.
  const ScopedEnv no_proxy("no_proxy", "127.0.0.1,localhost");
  const ScopedEnv no_proxy_upper("NO_PROXY", "127.0.0.1,localhost");
  Executor executor(ExecutorOptions{});
  executor.Start();

  const auto done = SendOne(executor, 1, target.Url(), LocalRules(&proxy, {}, "alice", "pa:ss%41"));
  CHECK(done.result.transport_error == TransportError::kNone);
  CHECK(done.result.status_code == 200);
  CHECK(target.Seen().empty());
  const auto seen = proxy.Seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].path == target.Url());  // the absolute form a plain proxy is sent
  // Basic "alice:pa:ss%41": name and password taken as they are (not URL-decoded).
  CHECK(seen[0].headers.at("proxy-authorization") == "Basic YWxpY2U6cGE6c3MlNDE=");

  // The same handle, the same proxy, a policy without credentials: none are sent.
  const auto second = SendOne(executor, 2, target.Url(), LocalRules(&proxy));
  CHECK(second.result.status_code == 200);
  REQUIRE(proxy.Seen().size() == 2);
  CHECK(proxy.Seen()[1].headers.count("proxy-authorization") == 0);
}

TEST_CASE("a connection through the egress proxy is never reused without it, nor a direct one through it") {
  LoopbackServer proxy;
  proxy.Start();
  LoopbackServer target;
  target.Start();
  // An environment proxy would be taken by a request without a policy proxy if curl were let to.
  const ScopedEnv http_proxy("http_proxy", "http://127.0.0.1:" + std::to_string(proxy.port()));
  ExecutorOptions options;
  options.max_connections = 4;
  options.max_active = 1;  // one handle, one request at a time: reuse is curl's choice alone
  Executor executor(options);
  executor.Start();
  // Both destinations (the proxy at 127.0.0.1, the target at 127.0.0.1) pass
  // the address rules, so the pre-request check would not catch a wrong reuse:
  // what keeps them apart is curl keying connections by proxy.
  const auto via = LocalRules(&proxy);
  const auto direct = LocalRules();
  CHECK(SendOne(executor, 1, target.Url("/a"), via).result.status_code == 200);
  CHECK(SendOne(executor, 2, target.Url("/b"), direct).result.status_code == 200);
  CHECK(SendOne(executor, 3, target.Url("/c"), via).result.status_code == 200);
  CHECK(SendOne(executor, 4, target.Url("/d"), direct).result.status_code == 200);
  const auto through = proxy.Seen();
  const auto straight = target.Seen();
  REQUIRE(through.size() == 2);
  CHECK(through[0].path == target.Url("/a"));
  CHECK(through[1].path == target.Url("/c"));
  REQUIRE(straight.size() == 2);
  CHECK(straight[0].path == "/b");
  CHECK(straight[1].path == "/d");
  // Each kind did reuse its own kept-alive connection: one each.
  CHECK(proxy.Accepted() == 1);
  CHECK(target.Accepted() == 1);
}

TEST_CASE("the proxy refusing a destination is blocked with its status; a failing or missing proxy is transient") {
  LoopbackServer refuses;  // 403 to CONNECT and to plain requests, like a proxy's deny rule (no squid header)
  refuses.status = 403;
  refuses.Start();
  LoopbackServer wants_auth;
  wants_auth.status = 407;
  wants_auth.extra_headers = "Proxy-Authenticate: Basic realm=\"egress\"\r\n";
  wants_auth.Start();
  LoopbackServer squid_denies;  // squid's ERR_ACCESS_DENIED page for a plain http request
  squid_denies.status = 403;
  squid_denies.extra_headers = "X-Squid-Error: ERR_ACCESS_DENIED 0\r\n";
  squid_denies.body = "<html>Access Denied</html>";
  squid_denies.Start();
  LoopbackServer cannot_reach;
  cannot_reach.status = 503;
  cannot_reach.Start();
  const int closed_port = ClosedPort();
  Executor executor(ExecutorOptions{});
  executor.Start();
  const std::string https_url = "https://127.0.0.1:" + std::to_string(closed_port) + "/hook";
  const std::string http_url = "http://127.0.0.1:" + std::to_string(closed_port) + "/hook";

  SUBCASE("CONNECT answered 403") {
    const auto r = SendOne(executor, 1, https_url, LocalRules(&refuses)).result;
    CHECK(r.transport_error == TransportError::kBlocked);
    CHECK(r.status_code == 0);
    CHECK(Has(r.error_message, "egress proxy http://127.0.0.1:" + std::to_string(refuses.port()) +
                                   " refused the destination 127.0.0.1: CONNECT answered HTTP 403"));
    REQUIRE(refuses.Seen().size() == 1);
    CHECK(refuses.Seen()[0].method == "CONNECT");
    CHECK(refuses.Seen()[0].path == "127.0.0.1:" + std::to_string(closed_port));
  }
  SUBCASE("CONNECT answered 407") {
    const auto r = SendOne(executor, 2, https_url, LocalRules(&wants_auth)).result;
    CHECK(r.transport_error == TransportError::kBlocked);
    CHECK(Has(r.error_message, "CONNECT answered HTTP 407 (proxy authentication required)"));
  }
  SUBCASE("CONNECT answered 503: the proxy could not reach the destination, which may recover") {
    const auto r = SendOne(executor, 3, https_url, LocalRules(&cannot_reach)).result;
    CHECK(r.transport_error == TransportError::kConnect);
    CHECK(Has(r.error_message, "could not open a tunnel to 127.0.0.1: CONNECT answered HTTP 503"));
  }
  SUBCASE("plain http: squid's access-denied page, and a 407") {
    const auto denied = SendOne(executor, 4, http_url, LocalRules(&squid_denies)).result;
    CHECK(denied.transport_error == TransportError::kBlocked);
    CHECK(denied.status_code == 0);
    CHECK(Has(denied.error_message, "refused the destination 127.0.0.1: HTTP 403 (X-Squid-Error: ERR_ACCESS_DENIED 0)"));
    const auto auth = SendOne(executor, 5, http_url, LocalRules(&wants_auth)).result;
    CHECK(auth.transport_error == TransportError::kBlocked);
    CHECK(Has(auth.error_message, "HTTP 407 (proxy authentication required)"));
  }
  SUBCASE("plain http: a 403 without the proxy's mark is the destination's answer") {
    const auto r = SendOne(executor, 6, http_url, LocalRules(&refuses)).result;
    CHECK(r.transport_error == TransportError::kNone);
    CHECK(r.status_code == 403);
  }
  SUBCASE("nobody listening at the proxy's address") {
    auto rules = std::make_shared<EndpointRules>(*LocalRules());
    rules->proxy.host = "127.0.0.1";
    rules->proxy.port = closed_port;
    rules->proxy.url = "http://127.0.0.1:" + std::to_string(closed_port);
    const auto r = SendOne(executor, 7, https_url, rules).result;
    CHECK(r.transport_error == TransportError::kConnect);
    CHECK(Has(r.error_message, "egress proxy http://127.0.0.1:" + std::to_string(closed_port) + " unreachable"));
  }
}

TEST_CASE("allow_only_hosts: an unlisted destination is refused unsent, with or without a proxy") {
  LoopbackServer proxy;
  proxy.Start();
  LoopbackServer target;
  target.Start();
  Executor executor(ExecutorOptions{});
  executor.Start();
  const std::string by_name = "http://localhost:" + std::to_string(target.port()) + "/named";

  const auto refused = SendOne(executor, 1, target.Url(), LocalRules(nullptr, {"localhost"})).result;
  CHECK(refused.transport_error == TransportError::kBlocked);
  CHECK(refused.error_message == "destination refused: 127.0.0.1 is not in the policy's allow_only_hosts");
  const auto through = SendOne(executor, 2, target.Url(), LocalRules(&proxy, {"localhost"})).result;
  CHECK(through.transport_error == TransportError::kBlocked);
  CHECK(proxy.Seen().empty());
  CHECK(target.Seen().empty());
  CHECK(proxy.Accepted() == 0);
  CHECK(target.Accepted() == 0);

  const auto listed = SendOne(executor, 3, by_name, LocalRules(nullptr, {"LOCALHOST"})).result;
  CHECK(listed.transport_error == TransportError::kNone);
  CHECK(listed.status_code == 200);
  REQUIRE(target.Seen().size() == 1);
  CHECK(target.Seen()[0].path == "/named");
}

TEST_CASE("concurrent requests of policies with different proxy credentials each send their own") {
  LoopbackServer proxy;
  proxy.status = 407;
  proxy.Start();
  Executor executor(ExecutorOptions{});
  executor.Start();
  const int closed_port = ClosedPort();
  const std::string http_url = "http://localhost:" + std::to_string(closed_port) + "/plain";
  const std::string https_url = "https://localhost:" + std::to_string(closed_port) + "/tls";
  for (std::uint64_t round = 0; round < 5; ++round) {
    std::vector<Request> batch;
    batch.push_back(MakeRequest(3 * round + 1, http_url, "POST", "{}"));
    batch.back().rules = LocalRules(&proxy, {}, "courier", "right");
    batch.push_back(MakeRequest(3 * round + 2, https_url, "POST", "{}"));
    batch.back().rules = LocalRules(&proxy, {}, "courier", "wrong");
    batch.push_back(MakeRequest(3 * round + 3, https_url, "POST", "{}"));
    batch.back().rules = LocalRules(&proxy, {}, "courier", "right");
    executor.Submit(std::move(batch));
    for (const auto& [token, c] : Await(executor, 3)) {
      CAPTURE(token);
      CHECK(c.result.transport_error == TransportError::kBlocked);  // every one answered 407
    }
  }
  std::map<std::string, int> by_request;  // "METHOD Proxy-Authorization" -> requests seen
  for (const auto& seen : proxy.Seen()) {
    const auto auth = seen.headers.find("proxy-authorization");
    by_request[seen.method + " " + (auth == seen.headers.end() ? std::string("none") : auth->second)]++;
  }
  const std::string right = "Basic Y291cmllcjpyaWdodA==";  // courier:right
  const std::string wrong = "Basic Y291cmllcjp3cm9uZw==";  // courier:wrong
  CHECK(by_request == std::map<std::string, int>{{"POST " + right, 5}, {"CONNECT " + right, 5}, {"CONNECT " + wrong, 5}});
}

#include "http/executor.hpp"
#include "http/request_check.hpp"

#include "base/file.hpp"

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

namespace pgcourier::http {
namespace {

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
  void operator()(char* text) const { curl_free(text); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;
using MultiHandle = std::unique_ptr<CURLM, MultiDeleter>;

// curl_global_init is not thread-safe; do it once, before any executor thread.
void GlobalInitOnce() {
  static const bool initialized = [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
    return true;
  }();
  (void)initialized;
}

std::int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::string Trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

model::TransportError MapCurlCode(CURLcode code, bool body_too_large) {
  switch (code) {
    case CURLE_OK: return model::TransportError::kNone;
    case CURLE_OPERATION_TIMEDOUT: return model::TransportError::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return model::TransportError::kDns;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING: return model::TransportError::kConnect;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return model::TransportError::kTls;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_PARTIAL_FILE:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_UNSUPPORTED_PROTOCOL: return model::TransportError::kProtocol;
    case CURLE_WRITE_ERROR:
      return body_too_large ? model::TransportError::kBodyTooLarge : model::TransportError::kOther;
    default: return model::TransportError::kOther;
  }
}

// One request in flight, or an idle slot kept for the next one: the easy
// handle plus everything curl points into. A slot keeps its easy handle (and
// so the options that never change) for its whole life.
struct Transfer {
  Request request;
  EasyHandle easy;
  // CURLOPT_HTTPHEADER's list, its nodes pointing into request.headers: no
  // copy of a header per request (the vector keeps its capacity).
  std::vector<curl_slist> header_list;
  std::string excerpt;
  std::size_t body_bytes = 0;
  std::size_t max_body_bytes = 0;
  bool body_too_large = false;
  bool headers_complete = false;  // the blank line after the last header was seen
  bool plain_post = false;        // the handle's last request was a POST (no verb left to undo)
  std::string retry_after;
  std::string location;
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::int64_t started_us = 0;
  std::size_t active_index = 0;  // position in Impl::active while running
  std::string host;            // the URL's host, for the connect-time check
  std::string refused_reason;  // the last address the open-socket check refused
  int addresses_allowed = 0;   // sockets opened to allowed addresses
  std::string blocked_reason;  // set when the pre-request check refused the connection
  bool proxied = false;        // through the policy's egress proxy
  bool tunnel = false;         // ... with CONNECT (https); plain-proxy for http
  std::string proxy_error;     // an X-Squid-Error header: the answer is the proxy's own

  // Forgets the previous request's response; keeps string capacity.
  void Clear() {
    header_list.clear();
    excerpt.clear();
    body_bytes = 0;
    body_too_large = false;
    headers_complete = false;
    retry_after.clear();
    location.clear();
    error_buffer[0] = '\0';
    host.clear();
    refused_reason.clear();
    addresses_allowed = 0;
    blocked_reason.clear();
    proxied = false;
    tunnel = false;
    proxy_error.clear();
  }
};

int SockaddrPort(const sockaddr* address, socklen_t length) {
  if (address->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof in);
    return ntohs(in.sin_port);
  }
  if (address->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof in6);
    return ntohs(in6.sin6_port);
  }
  return 0;
}

// Whether a connection to ip:port is one to the egress proxy: its port, and
// its address when the proxy is given as an address. (A proxy named by host
// name may have any address; curl resolved that name, not a tenant.)
bool IsProxyEndpoint(const netguard::IpAddress& ip, int port, const netguard::EgressProxy& proxy) {
  if (port != proxy.port) return false;
  const auto literal = netguard::ParseIpLiteral(proxy.host);
  return !literal || *literal == ip;
}

// What the rules say about connecting to ip:port for this transfer: with an
// egress proxy only the proxy may be connected to (curl never connects to the
// destination then: the proxy resolves it and its own rules decide); without
// one the address must pass the endpoint rules. nullopt when allowed.
std::optional<std::string> ConnectRefusal(const Transfer& t, const netguard::IpAddress& ip, int port) {
  const netguard::EndpointRules& rules = *t.request.rules;
  if (rules.proxy.enabled()) {
    if (IsProxyEndpoint(ip, port, rules.proxy)) return std::nullopt;
    return "a connection to " + netguard::ToString(ip) + " port " + std::to_string(port) +
           " is not to the policy's egress proxy " + rules.proxy.url;
  }
  return netguard::CheckConnectAddress(ip, t.host, rules);
}

// Called by curl with the exact address it is about to connect to. Refusing
// one address lets curl try the host's next one; the result is "blocked" only
// when no allowed address was tried at all.
curl_socket_t OnOpenSocket(void* user, curlsocktype purpose, curl_sockaddr* address) noexcept {
  auto* t = static_cast<Transfer*>(user);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  if (t->request.rules) {
    const auto ip = netguard::FromSockaddr(&address->addr, address->addrlen);
    if (!ip) {
      t->refused_reason = "refused to connect to a non-IP address family";
      return CURL_SOCKET_BAD;
    }
    if (auto why = ConnectRefusal(*t, *ip, SockaddrPort(&address->addr, address->addrlen))) {
      t->refused_reason = std::move(*why);
      return CURL_SOCKET_BAD;
    }
  }
  ++t->addresses_allowed;
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// Called once the connection is ready, new or reused (and, through a proxy,
// after the CONNECT tunnel is up), before the request is sent: a kept-alive
// connection opened under another policy's allow list, or for another
// policy's proxy or no proxy at all, is checked against this request's rules.
int OnBeforeRequest(void* user, char* primary_ip, char*, int primary_port, int) noexcept {
  auto* t = static_cast<Transfer*>(user);
  if (!t->request.rules) return CURL_PREREQFUNC_OK;
  const auto ip = netguard::ParseIpLiteral(primary_ip ? primary_ip : "");
  if (!ip) {
    t->blocked_reason = "the connection's address could not be checked";
    return CURL_PREREQFUNC_ABORT;
  }
  if (auto why = ConnectRefusal(*t, *ip, primary_port)) {
    t->blocked_reason = std::move(*why);
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

// The URL's scheme and host (lower-case scheme; IPv6 host with brackets).
bool SplitUrl(const std::string& url, std::string& scheme, std::string& host) {
  std::unique_ptr<CURLU, UrlDeleter> parsed(curl_url());
  if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return false;
  char* raw = nullptr;
  if (curl_url_get(parsed.get(), CURLUPART_SCHEME, &raw, 0) != CURLUE_OK) return false;
  std::unique_ptr<char, CurlStringDeleter> s(raw);
  raw = nullptr;
  if (curl_url_get(parsed.get(), CURLUPART_HOST, &raw, 0) != CURLUE_OK) return false;
  std::unique_ptr<char, CurlStringDeleter> h(raw);
  scheme = s.get();
  host = h.get();
  return true;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  t->body_bytes += n;
  if (t->excerpt.size() < t->request.excerpt_bytes) {
    t->excerpt.append(data, std::min(n, t->request.excerpt_bytes - t->excerpt.size()));
  }
  if (t->body_bytes > t->max_body_bytes) {
    t->body_too_large = true;
    return 0;  // stop reading: a hostile receiver cannot make us download gigabytes
  }
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  const std::string_view line(data, n);
  if (StartsWithNoCase(line, "HTTP/")) {
    // A new response (e.g. after 100 Continue): forget the previous one's headers.
    t->retry_after.clear();
    t->location.clear();
    t->headers_complete = false;
    t->proxy_error.clear();
  } else if (line == "\r\n" || line == "\n") {
    t->headers_complete = true;
  } else if (StartsWithNoCase(line, "retry-after:")) {
    t->retry_after = Trim(line.substr(12)).substr(0, 128);
  } else if (StartsWithNoCase(line, "location:")) {
    t->location = Trim(line.substr(9)).substr(0, 512);
  } else if (StartsWithNoCase(line, "x-squid-error:")) {
    t->proxy_error = Trim(line.substr(14)).substr(0, 128);
  }
  return n;
}

// curl only reads header strings; the list needs a char*.
char kNoExpectHeader[] = "Expect:";

// Options that stay the same for every request a handle makes.
void ApplyFixedOptions(Transfer& t, const std::string& user_agent) {
  CURL* easy = t.easy.get();
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  // No CURLOPT_PIPEWAIT: on plain http it makes new requests queue behind a
  // busy connection (and time out unsent) instead of opening another one.
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error_buffer);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, OnOpenSocket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, OnBeforeRequest);
  curl_easy_setopt(easy, CURLOPT_PREREQDATA, &t);
  // The policy decides which destinations bypass its proxy: none. Without
  // this curl would read no_proxy from the environment.
  curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
  curl_easy_setopt(easy, CURLOPT_PROXYTYPE, static_cast<long>(CURLPROXY_HTTP));
  curl_easy_setopt(easy, CURLOPT_PROXYAUTH, static_cast<long>(CURLAUTH_BASIC));
  // The proxy's CONNECT answer is not the destination's response.
  curl_easy_setopt(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
}

// Every byte but the RFC 3986 unreserved ones as %XX.
std::string PercentEncode(std::string_view text) {
  constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

// The policy's egress proxy, or none: "" also keeps curl from taking a proxy
// from the environment (http_proxy...), whose use the endpoint checks would
// not know about. Set on every request, so that nothing of the previous
// request's proxy (or its credentials) stays on the handle.
void ApplyProxyOptions(Transfer& t) {
  CURL* easy = t.easy.get();
  const netguard::EgressProxy* proxy =
      t.request.rules && t.request.rules->proxy.enabled() ? &t.request.rules->proxy : nullptr;
  curl_easy_setopt(easy, CURLOPT_PROXY, proxy != nullptr ? proxy->url.c_str() : "");
  const bool credentials = proxy != nullptr && !proxy->user.empty();
  // curl URL-decodes proxy names and passwords (given either way), so a
  // password holding "%41" would reach the proxy as "A": hand them over
  // encoded. curl copies both strings.
  std::string user = credentials ? PercentEncode(proxy->user) : std::string();
  std::string password = credentials ? PercentEncode(proxy->password) : std::string();
  curl_easy_setopt(easy, CURLOPT_PROXYUSERNAME, credentials ? user.c_str() : nullptr);
  curl_easy_setopt(easy, CURLOPT_PROXYPASSWORD, credentials ? password.c_str() : nullptr);
  base::Wipe(user);
  base::Wipe(password);
}

// Points the handle at t.request. A POST following a POST on the same handle
// only swaps what differs; any other verb, before or now, starts from
// curl_easy_reset so that nothing of the previous request's method remains.
void ApplyRequestOptions(Transfer& t, const std::string& user_agent) {
  CURL* easy = t.easy.get();
  const bool post = t.request.method == "POST";
  if (!(post && t.plain_post)) {
    curl_easy_reset(easy);
    ApplyFixedOptions(t, user_agent);
  }
  t.plain_post = post;
  ApplyProxyOptions(t);
  t.header_list.clear();
  for (auto& h : t.request.headers) t.header_list.push_back({h.data(), nullptr});
  // Without this, curl waits up to a second for "100 Continue" on bodies over 1 KiB.
  t.header_list.push_back({kNoExpectHeader, nullptr});
  for (std::size_t i = 0; i + 1 < t.header_list.size(); ++i) t.header_list[i].next = &t.header_list[i + 1];
  curl_easy_setopt(easy, CURLOPT_URL, t.request.url.c_str());
  if (t.request.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (t.request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t.request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.request.body.size()));
    // PUT, PATCH, DELETE: the same body handling with another verb.
    if (!post) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, t.request.method.c_str());
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t.header_list.data());
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(t.request.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(t.request.request_timeout.count()));
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd, const char* what) : fd_(fd) {
    if (fd_ < 0) throw std::runtime_error(std::string(what) + ": " + std::generic_category().message(errno));
  }
  ~FileDescriptor() { close(fd_); }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int CeilMillis(std::chrono::steady_clock::duration d) {
  if (d <= std::chrono::steady_clock::duration::zero()) return 0;
  return static_cast<int>(std::min<std::int64_t>(std::chrono::ceil<std::chrono::milliseconds>(d).count(), 1000));
}

}  // namespace

// curl's socket interface (curl_multi_socket_action) on one epoll set, as in
// curl's ephiperfifo example: a wake-up costs work for the sockets that are
// ready and the timers that are due, not a pass over every transfer and every
// socket as curl_multi_perform + curl_multi_poll do. That is what keeps a
// thousand slow requests in flight cheap.
struct Executor::Impl {
  FileDescriptor epoll_fd{epoll_create1(EPOLL_CLOEXEC), "epoll_create1"};
  FileDescriptor wake_fd{eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd"};  // Submit, AbortAll... poke the loop
  FileDescriptor completion_fd{eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd"};  // readable: completions wait
  MultiHandle multi;
  std::optional<std::chrono::steady_clock::time_point> timer;  // when curl wants CURL_SOCKET_TIMEOUT
  std::vector<std::unique_ptr<Transfer>> slots;  // every Transfer made; each keeps its easy handle
  std::vector<Transfer*> idle;
  std::vector<Transfer*> active;  // added to the multi handle; Transfer::active_index is the position
  // Submitted, not started: over max_active, in submission order.
  struct Waiting {
    Request request;
    std::chrono::steady_clock::time_point since;
  };
  std::deque<Waiting> waiting;
  // SplitUrl's answers by URL (scheme, host): parsed once per endpoint, not per request.
  std::unordered_map<std::string, std::pair<std::string, std::string>> url_parts;

  Impl() {
    multi.reset(curl_multi_init());
    if (!multi) throw std::runtime_error("curl_multi_init failed");
    curl_multi_setopt(multi.get(), CURLMOPT_SOCKETFUNCTION, OnSocket);
    curl_multi_setopt(multi.get(), CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi.get(), CURLMOPT_TIMERFUNCTION, OnTimer);
    curl_multi_setopt(multi.get(), CURLMOPT_TIMERDATA, this);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd.get();
    if (epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, wake_fd.get(), &ev) != 0) {
      throw std::runtime_error(std::string("epoll_ctl: ") + std::generic_category().message(errno));
    }
  }
  ~Impl() {
    // Easy handles leave the multi handle before either is cleaned up; the
    // multi handle goes while the epoll set its callback uses is still open.
    RemoveAll();
    slots.clear();
    multi.reset();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void Wake() const {
    const std::uint64_t one = 1;
    (void)!write(wake_fd.get(), &one, sizeof one);
  }

  // An idle Transfer, or a new one; null when curl cannot make a handle.
  Transfer* Acquire() {
    if (!idle.empty()) {
      Transfer* t = idle.back();
      idle.pop_back();
      return t;
    }
    auto t = std::make_unique<Transfer>();
    t->easy.reset(curl_easy_init());
    if (!t->easy) return nullptr;
    slots.push_back(std::move(t));
    return slots.back().get();
  }

  void Activate(Transfer* t) {
    t->active_index = active.size();
    active.push_back(t);
    curl_multi_add_handle(multi.get(), t->easy.get());
  }

  void Release(Transfer* t) {
    curl_multi_remove_handle(multi.get(), t->easy.get());
    Transfer* last = active.back();
    active[t->active_index] = last;
    last->active_index = t->active_index;
    active.pop_back();
    t->header_list.clear();
    t->request = Request{};  // the body goes now, not when the slot is next used
    idle.push_back(t);
  }

  void RemoveAll() {
    while (!active.empty()) Release(active.back());
  }

  // curl's socket callback. A socket curl has not seen before (or since its
  // last REMOVE) has no assigned pointer: it is added to the epoll set and
  // marked; a marked one only changes the events it waits for.
  static int OnSocket(CURL*, curl_socket_t socket, int what, void* user, void* assigned) noexcept {
    auto* self = static_cast<Impl*>(user);
    const int epfd = self->epoll_fd.get();
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(epfd, EPOLL_CTL_DEL, socket, nullptr);  // may be closed already: fine
      return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
    ev.data.fd = socket;
    if (assigned == nullptr) {
      if (epoll_ctl(epfd, EPOLL_CTL_ADD, socket, &ev) != 0 && errno == EEXIST) epoll_ctl(epfd, EPOLL_CTL_MOD, socket, &ev);
      curl_multi_assign(self->multi.get(), socket, self);
    } else if (epoll_ctl(epfd, EPOLL_CTL_MOD, socket, &ev) != 0 && errno == ENOENT) {
      epoll_ctl(epfd, EPOLL_CTL_ADD, socket, &ev);
    }
    return 0;
  }

  static int OnTimer(CURLM*, long timeout_ms, void* user) noexcept {
    auto* self = static_cast<Impl*>(user);
    if (timeout_ms < 0) {
      self->timer.reset();
    } else {
      self->timer = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    }
    return 0;
  }
};

Executor::Executor(ExecutorOptions options) : options_(std::move(options)) {
  GlobalInitOnce();
  impl_ = std::make_unique<Impl>();
  curl_multi_setopt(impl_->multi.get(), CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_connections));
  curl_multi_setopt(impl_->multi.get(), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
}

Executor::~Executor() {
  Stop();
  impl_.reset();
}

void Executor::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Executor::Stop() {
  stop_ = true;
  impl_->Wake();
  if (thread_.joinable()) thread_.join();
  impl_->RemoveAll();
}

void Executor::Submit(std::vector<Request> requests) {
  if (requests.empty()) return;
  in_flight_ += static_cast<int>(requests.size());
  {
    std::lock_guard lock(mu_);
    for (auto& r : requests) incoming_.push_back(std::move(r));
  }
  impl_->Wake();
}

void Executor::AbortAll() {
  abort_ = true;
  impl_->Wake();
}

void Executor::DropWaiting() {
  drop_waiting_ = true;
  impl_->Wake();
}

int Executor::completion_fd() const { return impl_->completion_fd.get(); }

std::vector<Completion> Executor::TakeCompletions() {
  std::uint64_t drained = 0;
  (void)!read(impl_->completion_fd.get(), &drained, sizeof drained);  // EAGAIN when already empty
  std::lock_guard lock(mu_);
  std::vector<Completion> out;
  out.swap(completions_);
  return out;
}

// Starts waiting requests while fewer than max_active transfers run (curl
// sends them at its next timeout, which adding a handle sets to now).
void Executor::StartWaiting(std::vector<Completion>& finished) {
  // A request that ends here was never sent: nothing touched the network.
  auto unsent = [&](const Request& request, model::TransportError error, std::string message) {
    model::HttpResult r;
    r.transport_error = error;
    r.error_message = std::move(message);
    r.started_us = NowUnixMicros();
    finished.push_back({request.token, std::move(r)});
  };
  while (!impl_->waiting.empty() &&
         (options_.max_active <= 0 || static_cast<int>(impl_->active.size()) < options_.max_active)) {
    Request request = std::move(impl_->waiting.front().request);
    impl_->waiting.pop_front();
    if (auto problem = RequestProblem(request.url, request.headers)) {
      unsent(request, model::TransportError::kInvalidRequest, "request refused before sending: " + *problem);
      continue;
    }
    std::string host;
    bool https = false;
    if (request.rules) {
      std::optional<std::string> refused;
      auto parts = impl_->url_parts.find(request.url);
      if (parts == impl_->url_parts.end()) {
        std::string scheme;
        if (SplitUrl(request.url, scheme, host)) {
          if (impl_->url_parts.size() >= 10000) impl_->url_parts.clear();
          parts = impl_->url_parts.emplace(request.url, std::make_pair(std::move(scheme), host)).first;
        }
      } else {
        host = parts->second.second;
      }
      if (parts == impl_->url_parts.end()) {
        refused = "the URL could not be parsed";
      } else {
        // Also with an egress proxy: the URL's scheme, its literal host and
        // allow_only_hosts are decided here, before anything is sent.
        refused = netguard::CheckUrlTarget(parts->second.first, host, *request.rules);
        https = parts->second.first == "https";
      }
      if (refused) {
        unsent(request, model::TransportError::kBlocked, "destination refused: " + *refused);
        continue;
      }
    }
    Transfer* t = impl_->Acquire();
    if (t == nullptr) {
      unsent(request, model::TransportError::kOther, "curl_easy_init failed (out of memory?)");
      continue;
    }
    t->Clear();
    t->request = std::move(request);
    t->host = std::move(host);
    t->proxied = t->request.rules && t->request.rules->proxy.enabled();
    t->tunnel = t->proxied && https;
    t->max_body_bytes = options_.max_response_bytes;
    ApplyRequestOptions(*t, options_.user_agent);
    t->started_us = NowUnixMicros();
    impl_->Activate(t);
  }
}

namespace {

// The proxy's own answer, when it refused or failed the request: a CONNECT
// (https) answered with anything but 2xx, or, for plain http through the
// proxy, a 407 or a 403 carrying squid's X-Squid-Error header (a 403 without
// it may be the destination's, forwarded). 4xx: the proxy refuses the
// destination (blocked, not retried); 5xx on CONNECT: it could not reach it
// (transient). Returns false when the answer is not the proxy's.
bool ProxyAnswer(CURL* easy, const Transfer& t, model::HttpResult& r) {
  const std::string& proxy = t.request.rules->proxy.url;
  long connect_code = 0;
  curl_easy_getinfo(easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  if (t.tunnel && connect_code >= 300) {
    const std::string status = "HTTP " + std::to_string(connect_code);
    r.status_code = 0;  // nothing reached the destination
    if (connect_code >= 500) {
      r.transport_error = model::TransportError::kConnect;
      r.error_message = "egress proxy " + proxy + " could not open a tunnel to " + t.host + ": CONNECT answered " + status;
    } else {
      r.transport_error = model::TransportError::kBlocked;
      r.error_message = "egress proxy " + proxy + " refused the destination " + t.host + ": CONNECT answered " + status +
                        (connect_code == 407 ? " (proxy authentication required)" : "");
    }
    return true;
  }
  if (!t.tunnel && (r.status_code == 407 || (r.status_code == 403 && !t.proxy_error.empty()))) {
    r.transport_error = model::TransportError::kBlocked;
    r.error_message = "egress proxy " + proxy + " refused the destination " + t.host + ": HTTP " +
                      std::to_string(r.status_code) +
                      (t.proxy_error.empty() ? " (proxy authentication required)" : " (X-Squid-Error: " + t.proxy_error + ")");
    r.status_code = 0;
    return true;
  }
  return false;
}

model::HttpResult ResultOf(CURL* easy, CURLcode code, Transfer& t) {
  model::HttpResult r;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t total_us = 0;
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
  r.status_code = static_cast<int>(status);
  r.transport_error = MapCurlCode(code, t.body_too_large);
  if (!t.blocked_reason.empty()) {
    r.transport_error = model::TransportError::kBlocked;
    r.error_message = "destination refused: " + t.blocked_reason;
  } else if (code != CURLE_OK && !t.refused_reason.empty() && t.addresses_allowed == 0) {
    r.transport_error = model::TransportError::kBlocked;
    r.error_message = "destination refused: " + t.refused_reason;
  } else if (t.proxied && ProxyAnswer(easy, t, r)) {
    // r says what the proxy answered
  } else if (code == CURLE_OK && r.status_code != 0 && !t.headers_complete) {
    // curl accepts a connection closed in the middle of the headers; we do not.
    r.transport_error = model::TransportError::kProtocol;
    r.error_message = "the connection closed before the response headers were complete";
  } else if (code != CURLE_OK) {
    r.error_message = t.error_buffer[0] != '\0' ? t.error_buffer : curl_easy_strerror(code);
    if (t.proxied && code == CURLE_COULDNT_CONNECT) {
      r.error_message = "egress proxy " + t.request.rules->proxy.url + " unreachable: " + r.error_message;
    }
    if (t.body_too_large) {
      r.error_message = "response body exceeded " + std::to_string(t.max_body_bytes) + " bytes; stopped reading";
    }
  }
  r.body_excerpt = std::move(t.excerpt);
  r.retry_after = std::move(t.retry_after);
  r.location = std::move(t.location);
  r.duration_ms = static_cast<double>(total_us) / 1000.0;
  r.started_us = t.started_us;
  return r;
}

int SelectMask(std::uint32_t events) {
  int mask = 0;
  if ((events & (EPOLLIN | EPOLLHUP)) != 0) mask |= CURL_CSELECT_IN;
  if ((events & EPOLLOUT) != 0) mask |= CURL_CSELECT_OUT;
  if ((events & EPOLLERR) != 0) mask |= CURL_CSELECT_ERR;
  return mask;
}

}  // namespace

void Executor::Run() {
  CURLM* multi = impl_->multi.get();
  std::vector<Completion> finished;
  std::array<epoll_event, 256> events{};

  auto not_started = [&](const Request& request, std::string why) {
    model::HttpResult r;
    r.transport_error = model::TransportError::kAborted;
    r.error_message = std::move(why);
    r.started_us = NowUnixMicros();
    finished.push_back({request.token, std::move(r)});
  };
  auto hand_over = [&] {
    if (finished.empty()) return;
    in_flight_ -= static_cast<int>(finished.size());
    {
      std::lock_guard lock(mu_);
      for (auto& c : finished) completions_.push_back(std::move(c));
    }
    finished.clear();
    const std::uint64_t one = 1;
    (void)!write(impl_->completion_fd.get(), &one, sizeof one);
  };

  while (!stop_) {
    {
      std::lock_guard lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      for (auto& r : incoming_) impl_->waiting.push_back({std::move(r), now});
      incoming_.clear();
    }
    if (drop_waiting_.exchange(false)) {
      for (auto& w : impl_->waiting) not_started(w.request, "request not started: released at shutdown");
      impl_->waiting.clear();
    }
    if (options_.max_wait.count() > 0) {
      const auto oldest_allowed = std::chrono::steady_clock::now() - options_.max_wait;
      while (!impl_->waiting.empty() && impl_->waiting.front().since < oldest_allowed) {
        not_started(impl_->waiting.front().request,
                    "request not started: every transfer slot stayed busy for " +
                        std::to_string(options_.max_wait.count()) + " ms; released unsent");
        impl_->waiting.pop_front();
      }
    }
    if (abort_.exchange(false)) {
      for (auto& w : impl_->waiting) not_started(w.request, "request aborted at shutdown (not started)");
      impl_->waiting.clear();
      while (!impl_->active.empty()) {
        Transfer* t = impl_->active.back();
        model::HttpResult r;
        r.transport_error = model::TransportError::kAborted;
        r.error_message = "request aborted at shutdown";
        r.started_us = t->started_us;
        finished.push_back({t->request.token, std::move(r)});
        impl_->Release(t);
      }
    }
    // Slots freed in the previous turn take the next waiting requests at once,
    // without a round trip through the dispatcher.
    StartWaiting(finished);
    hand_over();

    const auto now = std::chrono::steady_clock::now();
    int wait_ms = 1000;
    if (impl_->timer) wait_ms = CeilMillis(*impl_->timer - now);
    if (options_.max_wait.count() > 0 && !impl_->waiting.empty()) {
      wait_ms = std::min(wait_ms, CeilMillis(impl_->waiting.front().since + options_.max_wait - now));
    }
    const int ready = epoll_wait(impl_->epoll_fd.get(), events.data(), static_cast<int>(events.size()), wait_ms);
    int running = 0;
    for (int i = 0; i < ready; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == impl_->wake_fd.get()) {
        std::uint64_t drained = 0;
        (void)!read(fd, &drained, sizeof drained);
        continue;
      }
      curl_multi_socket_action(multi, fd, SelectMask(events[static_cast<std::size_t>(i)].events), &running);
    }
    if (impl_->timer && std::chrono::steady_clock::now() >= *impl_->timer) {
      impl_->timer.reset();  // curl sets the next one from inside the call
      curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode code = msg->data.result;
      Transfer* t = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
      model::HttpResult r = ResultOf(easy, code, *t);
      finished.push_back({t->request.token, std::move(r)});
      impl_->Release(t);
    }
  }
}

std::optional<std::string> CheckDeliveryUrl(const std::string& url) {
  GlobalInitOnce();
  std::unique_ptr<CURLU, UrlDeleter> parsed(curl_url());
  if (!parsed) return "out of memory while parsing the URL";
  if (curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return "the subscription URL is not a valid absolute URL";
  }
  char* raw_scheme = nullptr;
  curl_url_get(parsed.get(), CURLUPART_SCHEME, &raw_scheme, 0);
  std::unique_ptr<char, CurlStringDeleter> scheme(raw_scheme);
  if (!scheme || (std::strcmp(scheme.get(), "http") != 0 && std::strcmp(scheme.get(), "https") != 0)) {
    return "the subscription URL must use http or https";
  }
  char* raw_host = nullptr;
  curl_url_get(parsed.get(), CURLUPART_HOST, &raw_host, 0);
  std::unique_ptr<char, CurlStringDeleter> host(raw_host);
  if (!host || host.get()[0] == '\0') return "the subscription URL has no host";
  return std::nullopt;
}

}  // namespace pgcourier::http

#include "http/transfer.hpp"

#include "base/file.hpp"
#include "netguard/address_policy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace pgcourier::http {
namespace {

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
      r.error_message =
          "egress proxy " + proxy + " could not open a tunnel to " + t.host + ": CONNECT answered " + status;
    } else {
      r.transport_error = model::TransportError::kBlocked;
      r.error_message = "egress proxy " + proxy + " refused the destination " + t.host + ": CONNECT answered " +
                        status + (connect_code == 407 ? " (proxy authentication required)" : "");
    }
    return true;
  }
  if (!t.tunnel && (r.status_code == 407 || (r.status_code == 403 && !t.proxy_error.empty()))) {
    r.transport_error = model::TransportError::kBlocked;
    r.error_message =
        "egress proxy " + proxy + " refused the destination " + t.host + ": HTTP " + std::to_string(r.status_code) +
        (t.proxy_error.empty() ? " (proxy authentication required)" : " (X-Squid-Error: " + t.proxy_error + ")");
    r.status_code = 0;
    return true;
  }
  return false;
}

}  // namespace

// curl_global_init is not thread-safe; do it once, before any executor thread.
void GlobalInitOnce() {
  static const bool initialized = [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
    return true;
  }();
  (void)initialized;
}

std::int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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
}  // namespace pgcourier::http

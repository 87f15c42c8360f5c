#include "http/executor.hpp"

#include <curl/curl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

namespace pgcourier::http {
namespace {

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
  void operator()(char* text) const { curl_free(text); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;
using MultiHandle = std::unique_ptr<CURLM, MultiDeleter>;
using HeaderList = std::unique_ptr<curl_slist, SlistDeleter>;

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

// One request in flight: the easy handle plus everything curl points into.
struct Transfer {
  Request request;
  EasyHandle easy;
  HeaderList headers;
  std::string excerpt;
  std::size_t body_bytes = 0;
  std::size_t max_body_bytes = 0;
  bool body_too_large = false;
  std::string retry_after;
  std::string location;
  bool headers_complete = false;  // the blank line after the last header was seen
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::int64_t started_us = 0;
  std::string host;            // the URL's host, for the connect-time check
  std::string refused_reason;  // the last address the open-socket check refused
  int addresses_allowed = 0;   // sockets opened to allowed addresses
  std::string blocked_reason;  // set when the pre-request check refused the connection
};

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
    if (auto why = netguard::CheckConnectAddress(*ip, t->host, *t->request.rules)) {
      t->refused_reason = std::move(*why);
      return CURL_SOCKET_BAD;
    }
  }
  ++t->addresses_allowed;
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// Called once the connection is ready, new or reused, before the request is
// sent: a kept-alive connection opened under another policy's allow list is
// checked against this request's rules too.
int OnBeforeRequest(void* user, char* primary_ip, char*, int, int) noexcept {
  auto* t = static_cast<Transfer*>(user);
  if (!t->request.rules) return CURL_PREREQFUNC_OK;
  const auto ip = netguard::ParseIpLiteral(primary_ip ? primary_ip : "");
  if (!ip) {
    t->blocked_reason = "the connection's address could not be checked";
    return CURL_PREREQFUNC_ABORT;
  }
  if (auto why = netguard::CheckConnectAddress(*ip, t->host, *t->request.rules)) {
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
  } else if (line == "\r\n" || line == "\n") {
    t->headers_complete = true;
  } else if (StartsWithNoCase(line, "retry-after:")) {
    t->retry_after = Trim(line.substr(12)).substr(0, 128);
  } else if (StartsWithNoCase(line, "location:")) {
    t->location = Trim(line.substr(9)).substr(0, 512);
  }
  return n;
}

}  // namespace

struct Executor::Impl {
  MultiHandle multi;
  std::vector<EasyHandle> idle_handles;
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> active;
  // Submitted, not started: over max_active, in submission order.
  struct Waiting {
    Request request;
    std::chrono::steady_clock::time_point since;
  };
  std::deque<Waiting> waiting;
};

Executor::Executor(ExecutorOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  GlobalInitOnce();
  impl_->multi.reset(curl_multi_init());
  if (!impl_->multi) throw std::runtime_error("curl_multi_init failed");
  curl_multi_setopt(impl_->multi.get(), CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_connections));
  curl_multi_setopt(impl_->multi.get(), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::generic_category().message(errno));
}

Executor::~Executor() {
  Stop();
  impl_->active.clear();
  impl_->idle_handles.clear();
  impl_->multi.reset();
  if (event_fd_ >= 0) close(event_fd_);
}

void Executor::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Executor::Stop() {
  stop_ = true;
  if (impl_->multi) curl_multi_wakeup(impl_->multi.get());
  if (thread_.joinable()) thread_.join();
  // Handles must leave the multi handle before either is cleaned up.
  for (auto& [easy, transfer] : impl_->active) curl_multi_remove_handle(impl_->multi.get(), easy);
  impl_->active.clear();
}

void Executor::Submit(std::vector<Request> requests) {
  if (requests.empty()) return;
  in_flight_ += static_cast<int>(requests.size());
  {
    std::lock_guard lock(mu_);
    for (auto& r : requests) incoming_.push_back(std::move(r));
  }
  curl_multi_wakeup(impl_->multi.get());
}

void Executor::AbortAll() {
  abort_ = true;
  curl_multi_wakeup(impl_->multi.get());
}

void Executor::DropWaiting() {
  drop_waiting_ = true;
  curl_multi_wakeup(impl_->multi.get());
}

std::vector<Completion> Executor::TakeCompletions() {
  std::uint64_t drained = 0;
  (void)!read(event_fd_, &drained, sizeof drained);  // EAGAIN when already empty
  std::lock_guard lock(mu_);
  std::vector<Completion> out;
  out.swap(completions_);
  return out;
}

// Starts waiting requests while fewer than max_active transfers run; returns
// how many were handed to curl.
int Executor::StartWaiting(std::vector<Completion>& finished) {
  CURLM* multi = impl_->multi.get();
  int started = 0;
  while (!impl_->waiting.empty() &&
         (options_.max_active <= 0 || static_cast<int>(impl_->active.size()) < options_.max_active)) {
    auto t = std::make_unique<Transfer>();
    t->request = std::move(impl_->waiting.front().request);
    impl_->waiting.pop_front();

    t->max_body_bytes = options_.max_response_bytes;
    if (t->request.rules) {
      std::string scheme;
      std::optional<std::string> refused;
      if (!SplitUrl(t->request.url, scheme, t->host)) {
        refused = "the URL could not be parsed";
      } else {
        refused = netguard::CheckUrlTarget(scheme, t->host, *t->request.rules);
      }
      if (refused) {  // never touches the network
        model::HttpResult r;
        r.transport_error = model::TransportError::kBlocked;
        r.error_message = "destination refused: " + *refused;
        r.started_us = NowUnixMicros();
        finished.push_back({t->request.token, std::move(r)});
        continue;
      }
    }
    if (!impl_->idle_handles.empty()) {
      t->easy = std::move(impl_->idle_handles.back());
      impl_->idle_handles.pop_back();
    } else {
      t->easy.reset(curl_easy_init());
    }
    CURL* easy = t->easy.get();
    if (!easy) {
      model::HttpResult r;
      r.transport_error = model::TransportError::kOther;
      r.error_message = "curl_easy_init failed (out of memory?)";
      r.started_us = NowUnixMicros();
      finished.push_back({t->request.token, std::move(r)});
      continue;
    }
    curl_slist* list = nullptr;
    for (const auto& h : t->request.headers) {
      curl_slist* next = curl_slist_append(list, h.c_str());
      if (next) list = next;
    }
    // Without this, curl waits up to a second for "100 Continue" on bodies over 1 KiB.
    if (curl_slist* next = curl_slist_append(list, "Expect:")) list = next;
    t->headers.reset(list);
    curl_easy_setopt(easy, CURLOPT_URL, t->request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (t->request.method == "GET") {
      curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else if (t->request.method == "HEAD") {
      curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else {
      curl_easy_setopt(easy, CURLOPT_POST, 1L);
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->request.body.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->request.body.size()));
      // PUT, PATCH, DELETE: the same body handling with another verb (curl_easy_reset clears it for reuse).
      if (t->request.method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, t->request.method.c_str());
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers.get());
    curl_easy_setopt(easy, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(t->request.connect_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(t->request.request_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    // No CURLOPT_PIPEWAIT: on plain http it makes new requests queue behind a
    // busy connection (and time out unsent) instead of opening another one.
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error_buffer);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, OnOpenSocket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, t.get());
    curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, OnBeforeRequest);
    curl_easy_setopt(easy, CURLOPT_PREREQDATA, t.get());
    // Never through a proxy from the environment (http_proxy...): the
    // endpoint checks would then see the proxy, not the destination.
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    t->started_us = NowUnixMicros();
    impl_->active.emplace(easy, std::move(t));
    curl_multi_add_handle(multi, easy);
    ++started;
  }
  return started;
}

void Executor::Run() {
  CURLM* multi = impl_->multi.get();
  std::vector<Completion> finished;
  auto finish = [&](CURL* easy, model::HttpResult result) {
    auto it = impl_->active.find(easy);
    curl_multi_remove_handle(multi, easy);
    finished.push_back({it->second->request.token, std::move(result)});
    curl_easy_reset(easy);
    impl_->idle_handles.push_back(std::move(it->second->easy));
    impl_->active.erase(it);
  };

  auto not_started = [&](const Request& request, std::string why) {
    model::HttpResult r;
    r.transport_error = model::TransportError::kAborted;
    r.error_message = std::move(why);
    r.started_us = NowUnixMicros();
    finished.push_back({request.token, std::move(r)});
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
      std::vector<CURL*> all;
      for (auto& [easy, transfer] : impl_->active) all.push_back(easy);
      for (CURL* easy : all) {
        model::HttpResult r;
        r.transport_error = model::TransportError::kAborted;
        r.error_message = "request aborted at shutdown";
        r.started_us = impl_->active[easy]->started_us;
        finish(easy, std::move(r));
      }
    }
    StartWaiting(finished);


    int running = 0;
    curl_multi_perform(multi, &running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      Transfer* t = impl_->active.at(easy).get();
      model::HttpResult r;
      const CURLcode code = msg->data.result;
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      curl_off_t total_us = 0;
      curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
      r.status_code = static_cast<int>(status);
      r.transport_error = MapCurlCode(code, t->body_too_large);
      if (!t->blocked_reason.empty()) {
        r.transport_error = model::TransportError::kBlocked;
        r.error_message = "destination refused: " + t->blocked_reason;
      } else if (code != CURLE_OK && !t->refused_reason.empty() && t->addresses_allowed == 0) {
        r.transport_error = model::TransportError::kBlocked;
        r.error_message = "destination refused: " + t->refused_reason;
      } else if (code == CURLE_OK && r.status_code != 0 && !t->headers_complete) {
        // curl accepts a connection closed in the middle of the headers; we do not.
        r.transport_error = model::TransportError::kProtocol;
        r.error_message = "the connection closed before the response headers were complete";
      } else if (code != CURLE_OK) {
        r.error_message = t->error_buffer[0] ? t->error_buffer : curl_easy_strerror(code);
        if (t->body_too_large) {
          r.error_message = "response body exceeded " + std::to_string(t->max_body_bytes) + " bytes; stopped reading";
        }
      }
      r.body_excerpt = std::move(t->excerpt);
      r.retry_after = std::move(t->retry_after);
      r.location = std::move(t->location);
      r.duration_ms = static_cast<double>(total_us) / 1000.0;
      r.started_us = t->started_us;
      finish(easy, std::move(r));
    }
    // Slots freed just now take the next waiting requests at once, without a
    // round trip through the dispatcher.
    const bool started = StartWaiting(finished) > 0;

    if (!finished.empty()) {
      in_flight_ -= static_cast<int>(finished.size());
      {
        std::lock_guard lock(mu_);
        for (auto& c : finished) completions_.push_back(std::move(c));
      }
      finished.clear();
      const std::uint64_t one = 1;
      (void)!write(event_fd_, &one, sizeof one);
    }
    if (!started) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
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

// The executor: the multi handle, its epoll loop and the queue of requests
// waiting for a slot. What happens to one transfer is in transfer.cpp.
#include "http/executor.hpp"

#include <curl/curl.h>
#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "base/fd.hpp"
#include "http/request_check.hpp"
#include "http/transfer.hpp"

namespace pgcourier::http {
namespace {

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
  base::FileDescriptor epoll_fd{epoll_create1(EPOLL_CLOEXEC), "epoll_create1"};
  base::EventFd wake;        // Submit, AbortAll... poke the loop
  base::EventFd completion;  // readable: completions wait
  MultiHandle multi;
  std::optional<std::chrono::steady_clock::time_point> timer;  // when curl wants CURL_SOCKET_TIMEOUT
  std::vector<std::unique_ptr<Transfer>> slots;                // every Transfer made; each keeps its easy handle
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
    ev.data.fd = wake.fd();
    if (epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, wake.fd(), &ev) != 0) {
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

  void Wake() const { wake.Signal(); }

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
      if (epoll_ctl(epfd, EPOLL_CTL_ADD, socket, &ev) != 0 && errno == EEXIST)
        epoll_ctl(epfd, EPOLL_CTL_MOD, socket, &ev);
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

int Executor::completion_fd() const { return impl_->completion.fd(); }

std::vector<Completion> Executor::TakeCompletions() {
  impl_->completion.Drain();
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
    impl_->completion.Signal();
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
        not_started(impl_->waiting.front().request, "request not started: every transfer slot stayed busy for " +
                                                        std::to_string(options_.max_wait.count()) +
                                                        " ms; released unsent");
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
    // without a round trip through the engine thread.
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
      if (fd == impl_->wake.fd()) {
        impl_->wake.Drain();
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

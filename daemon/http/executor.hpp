// Executor: runs HTTP requests through one libcurl multi handle on its own
// thread, driven by curl_multi_socket_action on an epoll set. Connections are
// kept alive and reused across requests (curl keys them by destination and by
// proxy: a connection through an egress proxy is never reused for a request
// without that proxy, nor the reverse); easy handles are pooled and keep the
// options that never change.
//
// Thread-safety: Submit, AbortAll, TakeCompletions and completion_fd may be
// called from any thread. Everything curl lives on the executor thread only.
// Completions are handed back through a queue; completion_fd() (an eventfd)
// becomes readable whenever the queue is not empty, for the caller's poll loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model/delivery.hpp"
#include "netguard/address_policy.hpp"

namespace pgcourier::http {

struct Request {
  std::uint64_t token = 0;             // caller's id, echoed in the Completion
  std::string method = "POST";         // GET, POST, PUT, PATCH or DELETE
  std::string url;
  std::vector<std::string> headers;    // "Name: value"
  std::string body;
  model::Millis connect_timeout{5000};
  model::Millis request_timeout{30000};
  std::size_t excerpt_bytes = 1024;    // response body bytes kept
  // Endpoint safety: the URL's scheme and host (and allow_only_hosts) are
  // checked before anything is sent, and every address is checked again as
  // curl is about to connect to it (so a DNS answer cannot swap in an
  // internal address). Null: no checks, no proxy.
  //
  // With the rules' egress proxy, the request goes through it (CONNECT for
  // https, plain-proxy for http; no_proxy from the environment is ignored):
  // the scheme, the literal host and allow_only_hosts are still checked here
  // before sending, but curl does not resolve the destination's name, the
  // proxy does, so its addresses cannot be checked by the daemon; the proxy's
  // own access rules are the enforcement point for them. Every connection
  // must then be to the proxy (its port, and its address when it is given as
  // one), new or kept alive. The proxy refusing the destination (CONNECT
  // answered 4xx; for plain http 407, or 403 with squid's X-Squid-Error)
  // completes as kBlocked with the proxy's status in the message; a CONNECT
  // answered 5xx or an unreachable proxy is kConnect (transient).
  std::shared_ptr<const netguard::EndpointRules> rules;
};

struct Completion {
  std::uint64_t token = 0;
  model::HttpResult result;
};

struct ExecutorOptions {
  int max_connections = 256;           // connection cache size
  std::string user_agent = "pgcourier";
  // A response body larger than this is cut off (kBodyTooLarge); the status
  // line already received still decides the outcome.
  std::size_t max_response_bytes = 1 << 20;
  // Transfers running at once (0: no cap). Requests submitted beyond it wait,
  // in submission order, and start in the executor thread as transfers finish.
  int max_active = 0;
  // A request that waited longer than this for a slot completes with
  // kAborted, unsent, so its lease cannot run out before it is even sent
  // (0: no limit).
  model::Millis max_wait{0};
};

// What a lane needs of the executor: to hand it requests. Completions come
// back to the engine, which routes them by token. Tests give lanes a fake.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual void Submit(std::vector<Request> requests) = 0;
};

class Executor final : public Transport {
 public:
  explicit Executor(ExecutorOptions options);
  ~Executor() override;  // Stop()s
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Start();
  // Stops the thread; requests still in flight are dropped without completion.
  void Stop();

  void Submit(std::vector<Request> requests) override;
  // Every request in flight or queued completes at once with kAborted.
  void AbortAll();
  // Requests waiting for a transfer slot complete with kAborted, unsent;
  // running ones go on.
  void DropWaiting();

  std::vector<Completion> TakeCompletions();
  int completion_fd() const;
  int in_flight() const { return in_flight_.load(); }

 private:
  struct Impl;
  void Run();
  void StartWaiting(std::vector<Completion>& finished);

  ExecutorOptions options_;
  std::unique_ptr<Impl> impl_;  // curl state, executor thread only
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> abort_{false};
  std::atomic<bool> drop_waiting_{false};
  std::atomic<int> in_flight_{0};

  std::mutex mu_;
  std::vector<Request> incoming_;        // guarded by mu_
  std::vector<Completion> completions_;  // guarded by mu_
};

// nullopt when url is an absolute http:// or https:// URL with a host;
// otherwise why it is not (for the delivery's error message).
std::optional<std::string> CheckDeliveryUrl(const std::string& url);

}  // namespace pgcourier::http

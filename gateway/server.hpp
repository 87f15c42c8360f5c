// Server: the HTTP listener, over civetweb's C API (Debian's libcivetweb 1.15,
// the library prometheus-cpp already links for /metrics). civetweb runs a
// fixed pool of worker threads, each serving one connection at a time; its
// request_timeout_ms bounds the whole time a request may take to arrive (a
// client sending a header byte a second is cut off), max_request_size bounds
// the header block, and this wrapper bounds the body (413 before reading more
// than max_body_bytes). TLS when a certificate file is given (the file holds
// the certificate and its key, as civetweb expects).
//
// Every request becomes a Request value handed to the handler on the worker
// thread; the handler must be thread-safe and must not throw (an exception is
// answered 500 and logged without the request's headers or body).
// Start() throws std::runtime_error when the port cannot be bound.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "http_types.hpp"

struct mg_context;
struct mg_connection;

namespace pgcourier::gateway {

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 is not supported by civetweb: pick one
  std::string tls_certificate;             // PEM file with certificate and private key; empty: plain HTTP
  int threads = 8;
  int request_timeout_ms = 10000;
  int keep_alive_timeout_ms = 5000;
  int max_header_bytes = 16384;
  long long max_body_bytes = 1 << 20;
};

class Server {
 public:
  using Handler = std::function<Response(const Request&)>;
  Server(ServerOptions options, Handler handler);
  ~Server();  // stops (waits for the workers)
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void Start();
  void Stop();
  // The port bound (after Start).
  int port() const { return port_; }

 private:
  static int OnRequest(::mg_connection* conn, void* self);
  void Serve(::mg_connection* conn);

  const ServerOptions options_;
  const Handler handler_;
  mg_context* ctx_ = nullptr;
  int port_ = 0;
};

}  // namespace pgcourier::gateway

#include "server.hpp"

#include <civetweb.h>
#include <spdlog/spdlog.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>
#include <vector>

namespace pgcourier::gateway {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string UrlDecode(const std::string& text) {
  std::vector<char> buf(text.size() + 1);
  const int n = mg_url_decode(text.data(), static_cast<int>(text.size()), buf.data(), static_cast<int>(buf.size()), 1);
  return n < 0 ? std::string() : std::string(buf.data(), static_cast<std::size_t>(n));
}

std::map<std::string, std::string> ParseQuery(const char* query) {
  std::map<std::string, std::string> out;
  if (query == nullptr) return out;
  std::string q(query);
  std::size_t start = 0;
  while (start <= q.size()) {
    auto end = q.find('&', start);
    if (end == std::string::npos) end = q.size();
    const std::string pair = q.substr(start, end - start);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      out[UrlDecode(pair.substr(0, eq))] = eq == std::string::npos ? "" : UrlDecode(pair.substr(eq + 1));
    }
    start = end + 1;
  }
  return out;
}

int LogMessage(const struct mg_connection*, const char* message) {
  // civetweb's own errors (bad requests, TLS handshakes): no request content in them.
  spdlog::debug("http: {}", message);
  return 1;
}

void Write(struct mg_connection* conn, const Response& r) {
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + ReasonPhrase(r.status) + "\r\n";
  head += "Content-Type: " + r.content_type + "\r\n";
  head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  head += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
  for (const auto& [name, value] : r.headers) head.append(name).append(": ").append(value).append("\r\n");
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  if (!r.body.empty()) mg_write(conn, r.body.data(), r.body.size());
}

}  // namespace

Server::Server(ServerOptions options, Handler handler) : options_(std::move(options)), handler_(std::move(handler)) {}

Server::~Server() { Stop(); }

void Server::Start() {
  mg_init_library(options_.tls_certificate.empty() ? 0 : MG_FEATURES_TLS);
  std::string ports = options_.listen + (options_.tls_certificate.empty() ? "" : "s");
  const std::string threads = std::to_string(options_.threads);
  const std::string request_timeout = std::to_string(options_.request_timeout_ms);
  const std::string keep_alive_timeout = std::to_string(options_.keep_alive_timeout_ms);
  const std::string header_bytes = std::to_string(options_.max_header_bytes);
  std::vector<const char*> opts = {"listening_ports", ports.c_str(),
                                   "num_threads", threads.c_str(),
                                   "request_timeout_ms", request_timeout.c_str(),
                                   "keep_alive_timeout_ms", keep_alive_timeout.c_str(),
                                   "enable_keep_alive", "yes",
                                   "max_request_size", header_bytes.c_str(),
                                   "linger_timeout_ms", "1000",
                                   "decode_url", "yes"};
  if (!options_.tls_certificate.empty()) {
    opts.insert(opts.end(), {"ssl_certificate", options_.tls_certificate.c_str(), "ssl_protocol_version", "4"});
  }
  opts.push_back(nullptr);
  mg_callbacks callbacks{};
  callbacks.log_message = &LogMessage;
  ctx_ = mg_start(&callbacks, nullptr, opts.data());
  if (ctx_ == nullptr) throw std::runtime_error("cannot listen on " + options_.listen + " (in use, or TLS files unusable)");
  mg_set_request_handler(ctx_, "/", &Server::OnRequest, this);
  mg_server_port server_ports[4] = {};
  const int n = mg_get_server_ports(ctx_, 4, server_ports);
  if (n > 0) port_ = server_ports[0].port;
}

void Server::Stop() {
  if (ctx_ != nullptr) {
    mg_stop(ctx_);
    ctx_ = nullptr;
  }
}

int Server::OnRequest(struct mg_connection* conn, void* self) {
  static_cast<Server*>(self)->Serve(conn);
  return 1;  // handled: a status code was sent
}

void Server::Serve(struct mg_connection* conn) {
  const auto started = std::chrono::steady_clock::now();
  const mg_request_info* info = mg_get_request_info(conn);
  Request req;
  req.method = info->request_method ? info->request_method : "";
  req.path = info->local_uri ? info->local_uri : "/";
  req.query = ParseQuery(info->query_string);
  req.remote_addr = info->remote_addr;
  for (int i = 0; i < info->num_headers; ++i) {
    req.headers[Lower(info->http_headers[i].name)] = info->http_headers[i].value;
  }
  Response response;
  if (info->content_length > options_.max_body_bytes) {
    response = Problem(413, "the body is over " + std::to_string(options_.max_body_bytes) + " bytes");
    response.headers.emplace_back("Connection", "close");
  } else {
    // Read at most one byte more than allowed (a chunked body has no length up front).
    char buf[8192];
    bool too_large = false;
    for (;;) {
      const int n = mg_read(conn, buf, sizeof buf);
      if (n <= 0) break;
      req.body.append(buf, static_cast<std::size_t>(n));
      if (static_cast<long long>(req.body.size()) > options_.max_body_bytes) {
        too_large = true;
        break;
      }
    }
    if (too_large) {
      response = Problem(413, "the body is over " + std::to_string(options_.max_body_bytes) + " bytes");
      response.headers.emplace_back("Connection", "close");
    } else {
      try {
        response = handler_(req);
      } catch (const std::exception& e) {
        spdlog::error("{} {}: {}", req.method, req.path, e.what());
        response = Problem(500);
      }
    }
  }
  Write(conn, response);
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  // The access log: method, path and status; never headers, query values or bodies (tokens and secrets live there).
  spdlog::info("{} {} {} {:.1f}ms", req.method, req.path, response.status, ms);
}

}  // namespace pgcourier::gateway

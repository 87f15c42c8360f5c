// One request's curl easy handle and everything curl points into while it
// runs (a Transfer), and the pieces of curl the executor builds on: handle
// ownership, the options a request sets, the connect-time destination
// checks, and reading a finished transfer's result. Internal to http/: the
// executor (executor.cpp) owns the multi handle and the loop; this file owns
// what happens to one transfer. Not synchronised: the executor's thread only
// (curl calls the callbacks on it).
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "http/executor.hpp"

namespace pgcourier::http {

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
void GlobalInitOnce();

std::int64_t NowUnixMicros();

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
  std::string host;              // the URL's host, for the connect-time check
  std::string refused_reason;    // the last address the open-socket check refused
  int addresses_allowed = 0;     // sockets opened to allowed addresses
  std::string blocked_reason;    // set when the pre-request check refused the connection
  bool proxied = false;          // through the policy's egress proxy
  bool tunnel = false;           // ... with CONNECT (https); plain-proxy for http
  std::string proxy_error;       // an X-Squid-Error header: the answer is the proxy's own

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

// The URL's scheme and host (lower-case scheme; IPv6 host with brackets).
bool SplitUrl(const std::string& url, std::string& scheme, std::string& host);

// Points the handle at t.request. A POST following a POST on the same handle
// only swaps what differs; any other verb, before or now, starts from
// curl_easy_reset so that nothing of the previous request's method remains.
void ApplyRequestOptions(Transfer& t, const std::string& user_agent);

// What a finished transfer's response (or failure) was; moves the excerpt
// and headers out of t.
model::HttpResult ResultOf(CURL* easy, CURLcode code, Transfer& t);

}  // namespace pgcourier::http

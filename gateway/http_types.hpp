// Request and Response: the gateway's HTTP values, independent of the server
// library (server.cpp fills a Request from civetweb and writes the Response),
// so the routes are plain functions of a Request. Plain data; not synchronised.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgcourier::gateway {

struct Request {
  std::string method;                          // "GET"
  std::string path;                            // decoded, without the query: "/api/v1/subscriptions/sub_1"
  std::map<std::string, std::string> query;    // decoded ?name=value pairs (the last one wins)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote_addr;

  std::optional<std::string> Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    if (it == headers.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> Query(const std::string& name) const {
    auto it = query.find(name);
    if (it == query.end()) return std::nullopt;
    return it->second;
  }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type and Content-Length
};

// {"...": ...} with status 200 (or `status`).
inline Response Json(std::string body, int status = 200) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// RFC 9457 problem details (application/problem+json): type about:blank, the
// status's title, and `detail` when it says something the caller may know.
Response Problem(int status, const std::string& detail = "");

// The standard reason phrase ("Not Found").
const char* ReasonPhrase(int status);

// application/x-www-form-urlencoded (a form body or a query): name -> value, decoded ('+' is a space).
std::map<std::string, std::string> ParseForm(const std::string& text);
// %XX for every byte but A-Z a-z 0-9 - _ . ~ (a query value).
std::string UrlEncode(const std::string& text);
// The cookies of a Cookie header: name -> value.
std::map<std::string, std::string> ParseCookies(const std::string& header);

// JSON string literal of `text` (quotes included; control characters escaped).
std::string JsonString(const std::string& text);

}  // namespace pgcourier::gateway

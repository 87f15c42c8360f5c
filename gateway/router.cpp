#include "router.hpp"

namespace pgcourier::gateway {

Response Router::Handle(const Request& request) {
  if (auto r = api_.Handle(request)) return *r;
  if (auto r = ingress_.Handle(request)) return *r;
  if (auto r = console_.Handle(request)) return *r;
  if (request.path == "/" && request.method == "GET") {
    Response to_console;
    to_console.status = 303;
    to_console.content_type = "text/plain; charset=utf-8";
    to_console.headers.emplace_back("Location", "/console/");
    return to_console;
  }
  return Problem(404);
}

}  // namespace pgcourier::gateway

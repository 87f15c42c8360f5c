// Router: which part of the gateway answers a request: the probes and the
// management API (api/), the ingress (ingress/), the console (console/),
// and 404 for anything else. Borrows what it routes
// to; thread-safe as they are.
#pragma once

#include "api/api.hpp"
#include "console/console.hpp"
#include "http_types.hpp"
#include "ingress/ingress.hpp"
#include "store/api/pool.hpp"

namespace pgcourier::gateway {

// docs/openapi.json, embedded at build time (generated openapi_embedded.cpp).
extern const char* const kOpenApiDocument;

class Router {
 public:
  Router(Api& api, ingress::Ingress& ingress, console::Console& console)
      : api_(api), ingress_(ingress), console_(console) {}
  Response Handle(const Request& request);

 private:
  Api& api_;
  ingress::Ingress& ingress_;
  console::Console& console_;
};

}  // namespace pgcourier::gateway

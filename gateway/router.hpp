// Router: which part of the gateway answers a request: the probes and the
// management API (api/), the ingress (ingress/), and 404 for anything else. Borrows what it routes
// to; thread-safe as they are.
#pragma once

#include "api/api.hpp"
#include "http_types.hpp"
#include "ingress/ingress.hpp"
#include "store/api/pool.hpp"

namespace pgcourier::gateway {

// docs/openapi.json, embedded at build time (generated openapi_embedded.cpp).
extern const char* const kOpenApiDocument;

class Router {
 public:
  Router(Api& api, ingress::Ingress& ingress) : api_(api), ingress_(ingress) {}
  Response Handle(const Request& request);

 private:
  Api& api_;
  ingress::Ingress& ingress_;
};

}  // namespace pgcourier::gateway

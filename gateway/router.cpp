#include "router.hpp"

namespace pgcourier::gateway {

Response Router::Handle(const Request& request) {
  if (auto r = api_.Handle(request)) return *r;
  if (auto r = ingress_.Handle(request)) return *r;
  return Problem(404);
}

}  // namespace pgcourier::gateway

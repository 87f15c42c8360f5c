// Ingress: POST /ingress/{source_id}. Rate-limited per source (429), then the
// source is looked up (unknown or disabled: 404), its secret opened with the
// master key, and the signature and timestamp window verified (verify.hpp)
// before anything is stored. A refused request is recorded with its reason in
// courier.ingress_requests and answered 401 or 400 without detail; an
// accepted one becomes an inbound event of the source's tenant
// (courier.api_ingress_accept, idempotent on the provider's delivery id) and
// is answered 202. The body limit is the server's (server.hpp).
//
// With a shard map the source is looked for in every shard (the one
// remembered for its id first: shards.hpp) and the request is handled by the
// shard that holds it; a source whose tenant the map puts in another shard
// is answered 503 and logged (README: Tenant shards).
//
// Borrows the shards and the master key; thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "http_types.hpp"
#include "rate_limit.hpp"
#include "shards.hpp"
#include "signing/secret_box.hpp"

namespace pgcourier::gateway::ingress {

struct IngressOptions {
  double rate_per_second = 100;  // per source
  double rate_burst = 200;
};

class Ingress {
 public:
  using UnixClock = std::function<std::int64_t()>;
  Ingress(IngressOptions options, Shards& shards, const signing::SecretBox* master_key,
          UnixClock now = nullptr);
  // nullopt unless the path is /ingress/...
  std::optional<Response> Handle(const Request& request);

 private:
  Shards& shards_;
  const signing::SecretBox* const master_key_;
  RateLimiter limiter_;
  UnixClock now_;
};

}  // namespace pgcourier::gateway::ingress

// Api: the routes of pgcourier-gateway: the probes (/healthz, /readyz), the
// management API under /api/v1 and its OpenAPI document. Each API request is
// authenticated by its bearer token (401 without a valid one), rate-limited
// per token (429), then answered by one call of a 80_gateway.sql function
// with the token's scope, so a tenant token reaches only its tenant's objects
// (anything else: 404, as for an id that does not exist). With a shard map the
// call goes to the shard whose database knows the token (shards.hpp; README:
// Tenant shards). Errors are RFC 9457 problem documents.
//
// Owns nothing but its limiter; borrows the shards and the master key, which
// must outlive it. Handle() is thread-safe (called on every server worker).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_types.hpp"
#include "rate_limit.hpp"
#include "shards.hpp"
#include "api/url_check.hpp"
#include "signing/secret_box.hpp"
#include "store/api/pool.hpp"

namespace pgcourier::gateway {

struct ApiOptions {
  double rate_per_second = 50;
  double rate_burst = 100;
  int required_schema_version = 0;  // /readyz: the version this build migrates to
  std::string openapi_document;     // docs/openapi.json's text, served as is
};

class Api {
 public:
  // master_key may be null: creating and rotating subscription secrets then answer 503.
  // `urls` checks the URLs of subscriptions and connections at the door (url_check.hpp).
  Api(ApiOptions options, Shards& shards, const signing::SecretBox* master_key, const UrlCheck& urls);

  // Routes /healthz, /readyz and /api/v1/...; nullopt for any other path.
  std::optional<Response> Handle(const Request& request);

  // The token's scope and the pool of the shard that knows it, or the
  // problem to answer (401, 429, 503). Shared with the console's sign-in.
  struct Caller {
    store::api::TokenScope scope;
    store::api::Pool* pool = nullptr;  // set unless refused
    std::string shard;                 // its name; "" without a shard map
    std::optional<Response> refusal;
  };
  Caller Authenticate(const std::string& token);

 private:
  Response Ready();
  Response Route(const Request& request, const store::api::TokenScope& scope, store::api::Pool& pool);
  // 422 naming the field when a URL of `body` is refused by its policy (for a
  // subscription update without a policy in the body: `current_policy`).
  std::optional<Response> RefusedUrls(const std::string& body, std::initializer_list<const char*> fields,
                                      const std::string& current_policy) const;

  const ApiOptions options_;
  Shards& shards_;
  const signing::SecretBox* const master_key_;
  const UrlCheck& urls_;
  RateLimiter limiter_;
};

// A store error as the problem the caller sees: no_data_found and
// insufficient_privilege are 404, refused values 422, a duplicate 409, a
// timeout or a lost database 503, anything else 500 (logged, not shown).
Response ProblemFromStore(const std::exception& error);
// 503 when no shard knew a token or source and `shards` could not be asked:
// "the database of shard two is unreachable" (without a map: "the database
// is unavailable", as ProblemFromStore says).
Response ProblemUnreachable(const std::vector<std::string>& shards);

}  // namespace pgcourier::gateway

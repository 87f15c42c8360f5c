// Console: the operator console under /console/, server-rendered HTML with no
// external assets (one inline style sheet; a Content-Security-Policy that
// allows nothing else), readable on a laptop and a phone.
//
// Sign-in: an operator API token (pgcourierctl api-token create --operator),
// checked like an API call, is kept in the session cookie pgc_session
// (HttpOnly, SameSite=Strict, Secure under TLS, Path=/console/). Every request
// verifies it again, so a revoked token signs the browser out at once, and
// any number of gateways serve the same browser (no session state here).
// CSRF: every form carries a token derived from the session token with the
// master key (SecretBox::Fingerprint), checked on every POST (403 without
// it); the sign-in form uses a double-submit cookie. Pages: overview,
// subscriptions with health, one subscription's deliveries, a delivery's
// attempt timeline, dead letters with filters and replay, runs with their
// attempts and failures, escalations.
//
// With a shard map an operator token belongs to one shard (the one that
// stores it: Api::Authenticate), and the console shows that shard's objects.
//
// Borrows the API and the master key; thread-safe.
#pragma once

#include <optional>
#include <string>

#include "api/api.hpp"
#include "http_types.hpp"
#include "signing/secret_box.hpp"
#include "store/api/pool.hpp"

namespace pgcourier::gateway::console {

class Console {
 public:
  Console(Api& api, const signing::SecretBox* master_key, bool secure_cookies)
      : api_(api), master_key_(master_key), secure_(secure_cookies) {}
  // nullopt unless the path is /console or under it.
  std::optional<Response> Handle(const Request& request);

 private:
  Response SignInPage(const std::string& error, int status = 200);
  Response SignIn(const Request& r);
  Response Page(const Request& r, const std::string& token, const Api::Caller& caller);
  std::string Csrf(const std::string& token) const;

  Api& api_;
  const signing::SecretBox* const master_key_;
  const bool secure_;
};

}  // namespace pgcourier::gateway::console

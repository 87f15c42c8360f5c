// OAuth2 access tokens (client credentials grant), in memory only: one per
// (credential version, token URL, client id), renewed token_refresh_margin
// before it expires but never sooner than half-way through a short-lived
// token's life (or every run would fetch one). While a token request is
// out, other runs and probes of the same connection wait for it instead of
// fetching their own. Tokens never reach a table, a file or a log.
// Time comes from the injected clock. Not synchronised: the engine's thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.hpp"
#include "model/policy.hpp"
#include "model/run.hpp"

namespace pgcourier::lanes::runs {

// What to do once a token request finishes: a valid token, or the failed result.
using TokenContinuation = std::function<void(const std::string* token, const model::HttpResult* failure)>;

class TokenCache {
 public:
  explicit TokenCache(const base::Clock& clock) : clock_(clock) {}

  // The cache key of a connection's token.
  static std::string KeyOf(const model::Connection& connection);

  // A token still good for at least the refresh margin, or nullptr.
  const std::string* Fresh(const std::string& key, model::Millis refresh_margin) const;
  // Queues `then` for the token of `key`; true when no request for it is
  // out yet (the caller sends one), false when `then` waits for the one out.
  bool Wait(const std::string& key, TokenContinuation then);
  // The token endpoint answered: stores the token (`access_token`,
  // `expires_in_seconds`, at most a day; 0: an hour) and runs the waiters,
  // or runs them with `failure`.
  void Resolved(const std::string& key, const std::string& access_token, std::int64_t expires_in_seconds);
  void Failed(const std::string& key, const model::HttpResult& failure);
  // A token the vendor refused: the next run fetches a fresh one.
  void Drop(const std::string& key) { tokens_.erase(key); }

 private:
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
    model::Millis lifetime{0};
  };
  const base::Clock& clock_;
  std::unordered_map<std::string, Token> tokens_;
  std::unordered_map<std::string, std::vector<TokenContinuation>> waiters_;
};

}  // namespace pgcourier::lanes::runs

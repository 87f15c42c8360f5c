#include "lanes/runs/tokens.hpp"

#include <algorithm>

namespace pgcourier::lanes::runs {
namespace {

constexpr model::Millis kDefaultTokenLifetime{3600000};
constexpr std::int64_t kMaxTokenLifetimeSeconds = 86400;

}  // namespace

std::string TokenCache::KeyOf(const model::Connection& c) {
  return c.credential_id + "#" + std::to_string(c.credential_version) + "#" + c.token_url + "#" + c.client_id;
}

const std::string* TokenCache::Fresh(const std::string& key, model::Millis refresh_margin) const {
  const auto it = tokens_.find(key);
  if (it == tokens_.end()) return nullptr;
  const model::Millis margin = std::min(refresh_margin, it->second.lifetime / 2);
  return clock_.Now() + margin < it->second.expires ? &it->second.value : nullptr;
}

bool TokenCache::Wait(const std::string& key, TokenContinuation then) {
  auto& waiters = waiters_[key];
  waiters.push_back(std::move(then));
  return waiters.size() == 1;
}

void TokenCache::Resolved(const std::string& key, const std::string& access_token, std::int64_t expires_in_seconds) {
  // At most a day, whatever the server says (and no overflow).
  const model::Millis lifetime = expires_in_seconds > 0
                                     ? model::Millis(std::min(expires_in_seconds, kMaxTokenLifetimeSeconds) * 1000)
                                     : kDefaultTokenLifetime;
  auto& token = tokens_[key];
  token = Token{access_token, clock_.Now() + lifetime, lifetime};
  auto waiters = std::move(waiters_[key]);
  waiters_.erase(key);
  for (auto& then : waiters) then(&token.value, nullptr);
}

void TokenCache::Failed(const std::string& key, const model::HttpResult& failure) {
  auto waiters = std::move(waiters_[key]);
  waiters_.erase(key);
  for (auto& then : waiters) then(nullptr, &failure);
}

}  // namespace pgcourier::lanes::runs

#include "shards.hpp"

#include <spdlog/spdlog.h>

#include "store/errors.hpp"

namespace pgcourier::gateway {

Shards::Shards(std::optional<config::ShardMap> map, const store::api::PoolOptions& options) : map_(std::move(map)) {
  if (!map_) {
    members_.push_back(Member{"", std::make_unique<store::api::Pool>(options)});
    return;
  }
  for (const auto& [name, url] : map_->shards) {
    auto shard_options = options;
    shard_options.database_url = url;
    members_.push_back(Member{name, std::make_unique<store::api::Pool>(shard_options)});
  }
}

std::vector<std::size_t> Shards::Order(std::string_view key) const {
  std::optional<std::size_t> first;
  {
    std::lock_guard lock(mu_);
    if (const auto it = remembered_.find(std::hash<std::string_view>{}(key)); it != remembered_.end()) {
      first = it->second;
    }
  }
  std::vector<std::size_t> order;
  if (first && *first < members_.size()) order.push_back(*first);
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if (!first || i != *first) order.push_back(i);
  }
  return order;
}

void Shards::Remember(std::string_view key, std::size_t shard) {
  std::lock_guard lock(mu_);
  if (remembered_.size() >= kCacheLimit) remembered_.clear();
  remembered_[std::hash<std::string_view>{}(key)] = shard;
}

bool Shards::Holds(std::size_t shard, const std::optional<std::string>& tenant) const {
  if (!map_ || !tenant) return true;
  const auto home = map_->ShardOf(*tenant);
  return home && *home == members_.at(shard).name;
}

std::string Shards::ShardOfTenant(const std::string& tenant) const {
  const auto home = map_ ? map_->ShardOf(tenant) : std::nullopt;
  return home.value_or("no shard");
}

Shards::Found Shards::Find(std::string_view key, const std::function<bool(store::api::Pool&)>& known) {
  Found found;
  for (const std::size_t i : Order(key)) {
    try {
      if (known(*members_[i].pool)) {
        Remember(key, i);
        found.shard = i;
        found.unreachable.clear();
        return found;
      }
    } catch (const store::StoreError& e) {
      if (e.kind() != store::StoreError::Kind::kConnectionLost) throw;
      spdlog::warn("{}database unreachable: {}", Sharded() ? "shard " + members_[i].name + ": " : "", e.what());
      found.unreachable.push_back(members_[i].name);
    }
  }
  return found;
}

}  // namespace pgcourier::gateway

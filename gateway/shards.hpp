// Shards: the databases pgcourier-gateway serves. Without a shard map, one
// (named "", from --config / DATABASE_URL), exactly as before shards; with
// one (--shard-map, PGCOURIER_SHARD_MAP; config/shard_map.hpp), one
// store::api::Pool per shard of the map, in the map's (name) order.
//
// A request's shard is where its key is known: an API token is verified by
// the shard that stores its hash, an ingress source is found in the shard
// that holds it. Find() asks the shard remembered for the key first, then the
// others; the cache keeps a hash of the key (never a token) and the shard
// index, so a wrong or stale entry only costs one extra query. Holds() is the
// map's check that an object's tenant lives on the shard it was found in
// (README: Tenant shards, for what the callers answer when it does not).
//
// Owns the pools. Thread-safe: the cache is guarded by mu_; the rest is
// constant after construction.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/shard_map.hpp"
#include "store/api/pool.hpp"

namespace pgcourier::gateway {

class Shards {
 public:
  // `options.database_url` is used without a map; with one, each shard's URL.
  Shards(std::optional<config::ShardMap> map, const store::api::PoolOptions& options);
  Shards(const Shards&) = delete;
  Shards& operator=(const Shards&) = delete;

  bool Sharded() const { return map_.has_value(); }
  std::size_t Size() const { return members_.size(); }
  const std::string& Name(std::size_t shard) const { return members_.at(shard).name; }
  store::api::Pool& PoolOf(std::size_t shard) { return *members_.at(shard).pool; }

  // The shard indexes to ask for `key`: the one remembered for it first, then the others in order.
  std::vector<std::size_t> Order(std::string_view key) const;
  void Remember(std::string_view key, std::size_t shard);
  // Whether an object of `tenant` (nullopt: an operator's, which belongs to
  // the shard it is in) found in `shard` is that tenant's: always without a
  // map; with one, only when the map puts the tenant in that shard.
  bool Holds(std::size_t shard, const std::optional<std::string>& tenant) const;
  // The shard the map puts `tenant` in, else "no shard" (for messages).
  std::string ShardOfTenant(const std::string& tenant) const;

  struct Found {
    std::optional<std::size_t> shard;  // where `known` said yes
    // When no shard knew the key: the shards that could not be asked (their
    // database unreachable, StoreError kConnectionLost), so "unknown" is not certain.
    std::vector<std::string> unreachable;
  };
  // Calls known(pool) on the shards in Order(key) until one returns true,
  // and remembers that shard. known() throws StoreError as the pool does: a
  // lost connection moves on to the next shard; anything else is rethrown.
  Found Find(std::string_view key, const std::function<bool(store::api::Pool&)>& known);

 private:
  struct Member {
    std::string name;
    std::unique_ptr<store::api::Pool> pool;
  };
  static constexpr std::size_t kCacheLimit = 100000;  // entries; emptied when full

  const std::optional<config::ShardMap> map_;
  std::vector<Member> members_;  // constant after construction
  mutable std::mutex mu_;
  std::unordered_map<std::size_t, std::size_t> remembered_;  // hash of a key -> shard; guarded by mu_
};

}  // namespace pgcourier::gateway

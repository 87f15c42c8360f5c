// The gateway's shard choice (gateway/shards.hpp) without a database: the
// pools open on first use, and Find() is given a fake lookup, so the order of
// the shards asked, the cache, an unreachable shard and the map's tenant
// check are seen directly.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/shard_map.hpp"
#include "shards.hpp"
#include "store/errors.hpp"

using pgcourier::config::ParseShardMap;
using pgcourier::gateway::Shards;
using pgcourier::store::StoreError;

namespace {

Shards TwoShards(const std::string& extra = "") {
  const std::string yaml =
      "shards:\n  one: postgresql://127.0.0.1:1/a\n  two: postgresql://127.0.0.1:1/b\n"
      "tenants:\n  acme: one\n  globex: two\n" +
      extra;
  return Shards(ParseShardMap(yaml, "test.yaml"), {});
}

std::vector<std::string> Names(const Shards& shards, const std::vector<std::size_t>& order) {
  std::vector<std::string> out;
  out.reserve(order.size());
  for (const auto i : order) out.push_back(shards.Name(i));
  return out;
}

}  // namespace

TEST_CASE("shards: without a map there is one unnamed shard that holds every tenant") {
  Shards shards(std::nullopt, {});
  CHECK_FALSE(shards.Sharded());
  REQUIRE(shards.Size() == 1);
  CHECK(shards.Name(0).empty());
  CHECK(shards.Holds(0, std::string("acme")));
  CHECK(shards.Holds(0, std::nullopt));
}

TEST_CASE("shards: a key is asked of the shard remembered for it first, then of the others in map order") {
  auto shards = TwoShards();
  CHECK(Names(shards, shards.Order("pgc_token")) == std::vector<std::string>{"one", "two"});
  shards.Remember("pgc_token", 1);
  CHECK(Names(shards, shards.Order("pgc_token")) == std::vector<std::string>{"two", "one"});
  CHECK(Names(shards, shards.Order("pgc_other")) == std::vector<std::string>{"one", "two"});
}

TEST_CASE("shards: Find goes past an unreachable shard, and remembers where the key was found") {
  auto shards = TwoShards();
  std::vector<std::string> asked;
  auto found = shards.Find("src_x", [&](pgcourier::store::api::Pool& pool) {
    asked.emplace_back(&pool == &shards.PoolOf(0) ? "one" : "two");
    if (&pool == &shards.PoolOf(0)) throw StoreError(StoreError::Kind::kConnectionLost, "refused");
    return true;
  });
  REQUIRE(found.shard);
  CHECK(*found.shard == 1);
  CHECK(found.unreachable.empty());
  CHECK(asked == std::vector<std::string>{"one", "two"});
  CHECK(Names(shards, shards.Order("src_x")) == std::vector<std::string>{"two", "one"});
}

TEST_CASE("shards: unknown everywhere with a shard down is not certain: the down shard is named") {
  auto shards = TwoShards();
  auto found = shards.Find("pgc_unknown", [&](pgcourier::store::api::Pool& pool) {
    if (&pool == &shards.PoolOf(1)) throw StoreError(StoreError::Kind::kConnectionLost, "refused");
    return false;
  });
  CHECK_FALSE(found.shard);
  CHECK(found.unreachable == std::vector<std::string>{"two"});
  auto certain = shards.Find("pgc_unknown", [](pgcourier::store::api::Pool&) { return false; });
  CHECK_FALSE(certain.shard);
  CHECK(certain.unreachable.empty());
}

TEST_CASE("shards: an error other than a lost connection is not skipped") {
  auto shards = TwoShards();
  CHECK_THROWS_AS(shards.Find("k",
                              [](pgcourier::store::api::Pool&) -> bool {
                                throw StoreError(StoreError::Kind::kStatement, "bad", "22023", "bad");
                              }),
                  StoreError);
}

TEST_CASE("shards: a tenant's object belongs only to the shard the map puts the tenant in") {
  auto shards = TwoShards();
  CHECK(shards.Holds(0, std::string("acme")));
  CHECK_FALSE(shards.Holds(1, std::string("acme")));
  CHECK(shards.Holds(1, std::string("globex")));
  CHECK_FALSE(shards.Holds(0, std::string("unlisted")));  // no default: in no shard
  CHECK(shards.ShardOfTenant("unlisted") == "no shard");
  CHECK(shards.Holds(0, std::nullopt));  // an operator's: the shard it is in
  CHECK(shards.Holds(1, std::nullopt));
  auto with_default = TwoShards("default: two\n");
  CHECK(with_default.Holds(1, std::string("unlisted")));
  CHECK_FALSE(with_default.Holds(0, std::string("unlisted")));
}

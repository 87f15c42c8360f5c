// The shard map: which PostgreSQL cluster holds which tenant's work, when one
// cluster is not enough. A YAML file read by pgcourierctl and
// pgcourier-gateway (--shard-map; gateway/shards.hpp); each cluster has its
// own daemons (their `tenants` setting may name the tenants of their shard,
// or be left empty: a daemon serves the database it is given).
//
//   shards:                      # name -> libpq URL, at least one
//     eu-1: postgresql://courier@db-eu-1/pgcourier
//     us-1: postgresql://courier@db-us-1/pgcourier
//   default: eu-1                # optional: the shard of tenants not listed
//   tenants:                     # optional: tenant -> shard name
//     acme: us-1
//
// Every name must be a shard of the file, every tenant id valid; problems are
// reported together with the file, line and key (ConfigError).
#pragma once

#include <map>
#include <optional>
#include <string>

namespace pgcourier::config {

struct ShardMap {
  std::map<std::string, std::string> shards;   // name -> URL
  std::map<std::string, std::string> tenants;  // tenant -> shard name
  std::string default_shard;                   // "" when none

  // The shard of `tenant`: its own entry, else the default; nullopt when neither.
  std::optional<std::string> ShardOf(const std::string& tenant) const;
};

// Throws ConfigError naming `source` (the file) and the key of each problem.
ShardMap ParseShardMap(const std::string& yaml_text, const std::string& source);
ShardMap LoadShardMapFile(const std::string& path);

}  // namespace pgcourier::config

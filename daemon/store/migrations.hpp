// The SQL migrations shipped with this build, embedded at build time: version 1
// "baseline" (sql/schema/*.sql, concatenated), then the deltas
// sql/migrations/NNN_name.up.sql; and the schema version this build requires.
#pragma once

#include <string>
#include <vector>

namespace pgcourier::store {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// Sorted by version. Defined in the generated migrations_embedded.cpp.
const std::vector<Migration>& EmbeddedMigrations();

}  // namespace pgcourier::store

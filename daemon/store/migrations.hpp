// The SQL migrations shipped with this build (sql/NNN_name.up.sql, embedded
// at build time) and the schema version this build requires.
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

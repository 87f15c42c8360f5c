// Schema migrations: the baseline and the numbered deltas embedded in this
// build (store/migrations.hpp), applied by pgcourierctl migrate. The daemon
// only checks (store::Session::CheckSchema) and refuses an older schema.
#pragma once

#include <string>
#include <vector>

#include "store/errors.hpp"

namespace pgcourier::store {

// Applies every embedded migration not yet recorded, each in its own
// transaction, under an advisory lock (safe to run concurrently and twice).
// Returns "NNN_name" of each migration applied. Throws StoreError.
std::vector<std::string> Migrate(const std::string& database_url);

}  // namespace pgcourier::store

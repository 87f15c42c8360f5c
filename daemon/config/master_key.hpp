// Where the master key (signing/secret_box.hpp) is read from, for pgcourierd
// and pgcourier-gateway alike: settings.master_key_file, else
// PGCOURIER_MASTER_KEY_FILE, else $CREDENTIALS_DIRECTORY/master-key (systemd's
// LoadCredential) when that file exists; "" when none is configured.
// Reads the environment; thread-safe as long as nobody sets it meanwhile.
#pragma once

#include <string>

#include "config/settings.hpp"

namespace pgcourier::config {

std::string MasterKeyPath(const Settings& settings);

}  // namespace pgcourier::config

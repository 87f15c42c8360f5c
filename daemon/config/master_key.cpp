#include "config/master_key.hpp"

#include <cstdlib>
#include <filesystem>

namespace pgcourier::config {

std::string MasterKeyPath(const Settings& settings) {
  if (!settings.master_key_file.empty()) return settings.master_key_file;
  if (const char* env = std::getenv("PGCOURIER_MASTER_KEY_FILE"); env && *env) return env;
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir && *dir) {
    const auto path = std::filesystem::path(dir) / "master-key";
    if (std::filesystem::exists(path)) return path.string();
  }
  return {};
}

}  // namespace pgcourier::config

// libFuzzer target: the YAML policies loader must report errors, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/policies.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto set = pgcourier::config::ParsePolicies(text, "fuzz.yaml");
    if (set.Find("default") == nullptr) __builtin_trap();  // a loaded file always has a default policy
  } catch (const pgcourier::config::ConfigError&) {
  }
  return 0;
}

// Parsing of human durations used in YAML files: "250ms", "5s", "2m", "1h",
// "1h30m", "1d". Pure; thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace pgcourier::config {

// nullopt for empty text, unknown units, negative or overflowing values.
// A bare number is rejected (units are required) except "0".
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

}  // namespace pgcourier::config

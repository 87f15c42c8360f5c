// Parsing of human durations used in YAML files: "250ms", "5s", "2m", "1h",
// "1h30m", "1d". Pure; thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pgcourier::config {

// nullopt for empty text, unknown units, negative or overflowing values.
// A bare number is rejected (units are required) except "0".
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The inverse, for messages and logs: "0s", "250ms", "5s", "1h30m", "1d2h".
// Negative values are written with a leading '-'. ParseDuration(FormatDuration(d)) == d for d >= 0.
std::string FormatDuration(std::chrono::milliseconds duration);

}  // namespace pgcourier::config

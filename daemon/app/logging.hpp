// Logging set-up for pgcourierd: spdlog on stderr (journald adds its own
// timestamps and metadata), human-readable text or one JSON object per line.
// Called from the main thread; spdlog itself is thread-safe.
#pragma once

#include <string>

namespace pgcourier::app {

// format: "text" or "json"; level: spdlog level name. Safe to call again (reload).
void ConfigureLogging(const std::string& format, const std::string& level);

}  // namespace pgcourier::app

// libFuzzer target: the Retry-After parser on arbitrary header values.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "retry/retry_after.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  for (const std::int64_t now : {std::int64_t{0}, std::int64_t{1795324280000}}) {
    if (auto delay = pgcourier::retry::ParseRetryAfter(value, now)) {
      if (delay->count() < 0 || *delay > pgcourier::retry::kMaxRetryAfter) __builtin_trap();
    }
  }
  return 0;
}

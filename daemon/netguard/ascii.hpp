// ASCII helpers of netguard/ (host names and IP literals are ASCII; no
// locale). Internal to netguard/.
#pragma once

#include <string>
#include <string_view>

namespace pgcourier::netguard::detail {

inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Value of a hex digit, or -1.
inline int DigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string ToLowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ToLowerAscii(c);
  return out;
}

}  // namespace pgcourier::netguard::detail

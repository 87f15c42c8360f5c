#include "validate/identifiers.hpp"

#include <algorithm>

#include "validate/endpoint_url.hpp"

namespace pgcourier::validate {
namespace {

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

}  // namespace

std::optional<std::string> IdentifierProblem(std::string_view value) {
  constexpr std::size_t kMaxLength = 128;
  const bool ok = !value.empty() && value.size() <= kMaxLength && IsAlnum(value[0]) &&
                  std::all_of(value.begin(), value.end(),
                              [](char c) { return IsAlnum(c) || c == '.' || c == '_' || c == ':' || c == '-'; });
  if (ok) return std::nullopt;
  return QuoteUntrusted(value) +
         " is not valid: 1 to 128 characters (letters, digits, '.', '_', ':' and '-'), starting with a letter or digit";
}

}  // namespace pgcourier::validate

// JSON reading for integration runs and the gateway, over simdjson (the only
// module that uses it): validating run bodies, taking an external reference out of a vendor's
// response by JSON pointer, reading OAuth2 token responses and run headers.
// Pure functions; thread-safe (each call uses its own parser).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcourier::json {

// True when text is one complete, valid JSON document.
bool IsValid(std::string_view text);

// The value at an RFC 6901 pointer ("/data/id", "" = the whole document):
// a string's contents unquoted, any other value as minified JSON. nullopt
// when the text is not JSON, the pointer is malformed or nothing is there.
std::optional<std::string> ValueAtPointer(std::string_view text, std::string_view pointer);

struct AccessToken {
  std::string access_token;
  std::int64_t expires_in_seconds = 0;  // 0 when the response did not say
};
// An OAuth2 token response (RFC 6749 section 5.1). nullopt unless it is a JSON
// object with a non-empty string access_token.
std::optional<AccessToken> ParseTokenResponse(std::string_view text);

// A JSON object whose values are all strings, as (name, value) pairs in
// document order. nullopt for anything else (with why in *error).
std::optional<std::vector<std::pair<std::string, std::string>>> StringObject(std::string_view text,
                                                                           std::string* error = nullptr);

// The objects at `pointer` (an array of objects, or one object) with their
// fields as text: a string's contents, null as "", anything else minified
// JSON. nullopt when the text is not JSON or something else is there. For the
// gateway's console, which renders the API's answers.
using Fields = std::map<std::string, std::string>;
std::optional<std::vector<Fields>> ObjectsAt(std::string_view text, std::string_view pointer);

}  // namespace pgcourier::json

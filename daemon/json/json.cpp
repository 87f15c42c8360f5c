#include "json/json.hpp"

#include <simdjson.h>

namespace pgcourier::json {
namespace {

// simdjson wants padded input; copying into padded_string is cheap for the
// sizes runs deal with (bodies up to the policy's max_body_bytes).
simdjson::padded_string Padded(std::string_view text) { return simdjson::padded_string(text.data(), text.size()); }

}  // namespace

bool IsValid(std::string_view text) {
  simdjson::dom::parser parser;
  const auto padded = Padded(text);
  simdjson::dom::element doc;
  return parser.parse(padded).get(doc) == simdjson::SUCCESS;
}

std::optional<std::string> ValueAtPointer(std::string_view text, std::string_view pointer) {
  simdjson::dom::parser parser;
  const auto padded = Padded(text);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return std::nullopt;
  simdjson::dom::element value;
  if (doc.at_pointer(pointer).get(value) != simdjson::SUCCESS) return std::nullopt;
  std::string_view str;
  if (value.get_string().get(str) == simdjson::SUCCESS) return std::string(str);
  return simdjson::minify(value);
}

std::optional<AccessToken> ParseTokenResponse(std::string_view text) {
  simdjson::dom::parser parser;
  const auto padded = Padded(text);
  simdjson::dom::object object;
  if (parser.parse(padded).get(object) != simdjson::SUCCESS) return std::nullopt;
  AccessToken token;
  std::string_view access;
  if (object["access_token"].get_string().get(access) != simdjson::SUCCESS || access.empty()) return std::nullopt;
  token.access_token = std::string(access);
  simdjson::dom::element expires;
  if (object["expires_in"].get(expires) == simdjson::SUCCESS) {
    std::int64_t seconds = 0;
    double real = 0;
    std::string_view digits;
    if (expires.get_int64().get(seconds) == simdjson::SUCCESS) {
      token.expires_in_seconds = seconds;
    } else if (expires.get_double().get(real) == simdjson::SUCCESS && real > 0 && real < 1e9) {
      token.expires_in_seconds = static_cast<std::int64_t>(real);
    } else if (expires.get_string().get(digits) == simdjson::SUCCESS) {
      // Some servers send "3600".
      std::int64_t parsed = 0;
      bool ok = !digits.empty() && digits.size() < 10;
      for (char c : digits) {
        if (c < '0' || c > '9') ok = false;
        else parsed = parsed * 10 + (c - '0');
      }
      if (ok) token.expires_in_seconds = parsed;
    }
  }
  if (token.expires_in_seconds < 0) token.expires_in_seconds = 0;
  return token;
}

std::optional<std::vector<std::pair<std::string, std::string>>> StringObject(std::string_view text,
                                                                           std::string* error) {
  auto fail = [error](std::string why) -> std::optional<std::vector<std::pair<std::string, std::string>>> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  simdjson::dom::parser parser;
  const auto padded = Padded(text);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return fail("not valid JSON");
  simdjson::dom::object object;
  if (doc.get_object().get(object) != simdjson::SUCCESS) return fail("not a JSON object");
  std::vector<std::pair<std::string, std::string>> out;
  for (auto field : object) {
    std::string_view value;
    if (field.value.get_string().get(value) != simdjson::SUCCESS) {
      return fail("the value of '" + std::string(field.key) + "' is not a string");
    }
    out.emplace_back(std::string(field.key), std::string(value));
  }
  return out;
}

}  // namespace pgcourier::json

namespace pgcourier::json {

std::optional<std::vector<Fields>> ObjectsAt(std::string_view text, std::string_view pointer) {
  simdjson::dom::parser parser;
  const auto padded = Padded(text);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return std::nullopt;
  simdjson::dom::element at;
  if (doc.at_pointer(pointer).get(at) != simdjson::SUCCESS) return std::nullopt;
  auto flatten = [](simdjson::dom::object object) {
    Fields fields;
    for (auto field : object) {
      std::string_view str;
      std::string value;
      if (field.value.is_null()) {
        value = "";
      } else if (field.value.get_string().get(str) == simdjson::SUCCESS) {
        value = std::string(str);
      } else {
        value = simdjson::minify(field.value);
      }
      fields.emplace(std::string(field.key), std::move(value));
    }
    return fields;
  };
  std::vector<Fields> out;
  simdjson::dom::object single;
  if (at.get_object().get(single) == simdjson::SUCCESS) {
    out.push_back(flatten(single));
    return out;
  }
  simdjson::dom::array array;
  if (at.get_array().get(array) != simdjson::SUCCESS) return std::nullopt;
  for (auto item : array) {
    simdjson::dom::object object;
    if (item.get_object().get(object) != simdjson::SUCCESS) return std::nullopt;
    out.push_back(flatten(object));
  }
  return out;
}

}  // namespace pgcourier::json

#include "store/pg/arrays.hpp"

#include <cstdio>
#include <pqxx/pqxx>
#include <tuple>

namespace pgcourier::store::pg {

std::string QuoteArrayElement(std::string_view item) {
  std::string out;
  out.reserve(item.size() + 2);
  out.push_back('"');
  for (char c : item) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

void ArrayBuilder::AddDouble(double value) {
  Sep();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", value);
  out_ += buf;
}

std::vector<std::string> ParseTextArray(const char* literal) {
  std::vector<std::string> out;
  // UTF-8 is safe to scan as single bytes here: no byte of a multi-byte
  // sequence is an ASCII quote, comma, brace or backslash.
  pqxx::array_parser parser(literal);
  for (auto [juncture, value] = parser.get_next(); juncture != pqxx::array_parser::done;
       std::tie(juncture, value) = parser.get_next()) {
    if (juncture == pqxx::array_parser::string_value) out.push_back(std::move(value));
    if (juncture == pqxx::array_parser::null_value) out.emplace_back();
  }
  return out;
}

std::string TextArray(const std::vector<std::string>& items) {
  ArrayBuilder array;
  for (const auto& item : items) array.AddText(item);
  return array.Finish();
}

std::string TextArray(const std::vector<const std::string*>& items) {
  ArrayBuilder array;
  for (const auto* item : items) {
    if (item) array.AddText(*item); else array.AddNull();
  }
  return array.Finish();
}

std::array<std::string, 3> ReleaseArrays(const std::vector<Release>& releases) {
  ArrayBuilder ids, delays, reasons;
  for (const auto& r : releases) {
    ids.AddText(r.id);
    delays.AddNumber(r.delay_ms);
    reasons.AddText(r.reason);
  }
  return {ids.Finish(), delays.Finish(), reasons.Finish()};
}

}  // namespace pgcourier::store::pg

#include "store/pg/arrays.hpp"

#include <cstdio>

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

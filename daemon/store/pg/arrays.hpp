// PostgreSQL array literals for batch statements: each column of a batch is
// one text[]/int[]/... parameter, and the statement unnest()s them side by
// side. Values are always bound as parameters, never spliced into SQL.
// Internal to daemon/store/. Not synchronised.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "store/types.hpp"

namespace pgcourier::store::pg {

// `item` as one double-quoted array element.
std::string QuoteArrayElement(std::string_view item);

// Builds one array literal, element by element.
class ArrayBuilder {
 public:
  void AddText(std::string_view value) { Sep(); out_ += QuoteArrayElement(value); }
  // An empty value becomes NULL.
  void AddTextOrNull(std::string_view value) {
    if (value.empty()) AddNull(); else AddText(value);
  }
  void AddNull() { Sep(); out_ += "NULL"; }
  template <typename T>
  void AddNumber(T value) { Sep(); out_ += std::to_string(value); }
  void AddDouble(double value);  // fixed notation, microsecond precision for milliseconds
  void AddBool(bool value) { Sep(); out_ += value ? "t" : "f"; }
  std::string Finish() const { return "{" + out_ + "}"; }

 private:
  void Sep() {
    if (!first_) out_.push_back(',');
    first_ = false;
  }
  std::string out_;
  bool first_ = true;
};

// The elements of a one-dimensional text[] as PostgreSQL prints it
// ('{a,"b c",NULL}'); NULL elements read as "". The reverse of TextArray.
std::vector<std::string> ParseTextArray(const char* literal);

// {"a","b"} of every item.
std::string TextArray(const std::vector<std::string>& items);
// The same with a null pointer as a NULL element.
std::string TextArray(const std::vector<const std::string*>& items);

// The (ids, delays in ms, reasons) arrays of a release statement
// (release_leases, release_runs).
std::array<std::string, 3> ReleaseArrays(const std::vector<Release>& releases);

}  // namespace pgcourier::store::pg

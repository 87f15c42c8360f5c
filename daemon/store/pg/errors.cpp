#include "store/pg/errors.hpp"

#include <algorithm>

namespace pgcourier::store::pg {

std::string ServerMessage(std::string_view text) {
  std::string out;
  bool first = true;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (first) {
      for (std::string_view prefix : {"ERROR:  ", "FATAL:  "}) {
        if (line.substr(0, prefix.size()) == prefix) line.remove_prefix(prefix.size());
      }
      out = line;
      first = false;
    } else if (line.rfind("DETAIL:", 0) == 0 || line.rfind("HINT:", 0) == 0) {
      const auto colon = line.find(':');
      const auto rest = line.find_first_not_of(' ', colon + 1);
      out.append("; ").append(line.substr(0, colon + 1)).append(" ").append(line.substr(std::min(rest, line.size())));
    }
  }
  return out;
}

StoreError::Kind KindOf(const pqxx::sql_error& error) {
  // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now,
  // 08xxx connection exceptions: the server is going away or gone.
  const std::string& state = error.sqlstate();
  if (state.rfind("57P", 0) == 0 || state.rfind("08", 0) == 0) return StoreError::Kind::kConnectionLost;
  if (state == "40P01" || state == "40001") return StoreError::Kind::kConflict;
  return StoreError::Kind::kStatement;
}

}  // namespace pgcourier::store::pg

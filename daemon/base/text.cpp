#include "base/text.hpp"

#include <cstdio>

namespace pgcourier::base {
namespace {

bool IsLowerHex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !text.empty();
}

}  // namespace

std::string JsonQuote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string TraceParent(std::string_view trace_id, std::uint64_t span_id) {
  // version-traceid-parentid-flags, all lower-case hex.
  if (trace_id.size() == 55 && trace_id.substr(0, 3) == "00-" && trace_id[35] == '-' && trace_id[52] == '-' &&
      IsLowerHex(trace_id.substr(3, 32)) && IsLowerHex(trace_id.substr(36, 16)) && IsLowerHex(trace_id.substr(53, 2))) {
    return std::string(trace_id);
  }
  if (trace_id.size() == 32 && IsLowerHex(trace_id) && trace_id != std::string(32, '0')) {
    char span[17];
    std::snprintf(span, sizeof span, "%016llx", static_cast<unsigned long long>(span_id | 1));
    return "00-" + std::string(trace_id) + "-" + span + "-01";
  }
  return {};
}

std::string_view Utf8Prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

}  // namespace pgcourier::base

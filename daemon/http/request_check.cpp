#include "http/request_check.hpp"

#include <cstdio>

namespace pgcourier::http {
namespace {

// RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
bool IsTokenChar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

std::string Hex(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", c);
  return buf;
}

// The name, printable for a message (names are short tokens; anything else is cut and escaped).
std::string PrintableName(std::string_view name) {
  std::string out;
  for (unsigned char c : name.substr(0, 64)) {
    if (IsControl(c) || c >= 0x80) {
      out += "\\x" + Hex(c).substr(2);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (name.size() > 64) out += "...";
  return out;
}

}  // namespace

bool IsSafeHeaderValue(std::string_view value) {
  for (unsigned char c : value) {
    if (IsControl(c) && c != '\t') return false;
  }
  return true;
}

std::optional<std::string> HeaderLineProblem(std::string_view line) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return "header line '" + PrintableName(line.substr(0, colon)) + "' has no 'name:' part";
  }
  const std::string_view name = line.substr(0, colon);
  for (unsigned char c : name) {
    if (!IsTokenChar(c)) {
      return "header name '" + PrintableName(name) + "' is not a token (" + Hex(c) + ")";
    }
  }
  const std::string_view value = line.substr(colon + 1);
  for (unsigned char c : value) {
    if (IsControl(c) && c != '\t') {
      return "the value of header '" + std::string(name) + "' contains a control character (" + Hex(c) + ")";
    }
  }
  return std::nullopt;
}

std::optional<std::string> RequestProblem(std::string_view url, const std::vector<std::string>& headers) {
  for (unsigned char c : url) {
    if (IsControl(c) || c == ' ') return "the URL contains a control character or space (" + Hex(c) + ")";
  }
  for (const auto& line : headers) {
    if (auto problem = HeaderLineProblem(line)) return problem;
  }
  return std::nullopt;
}

}  // namespace pgcourier::http

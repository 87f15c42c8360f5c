// UTF-8 validation follows Unicode's "maximal subpart" practice (the same as
// WHATWG's decoder): each maximal prefix of a well-formed sequence that ends
// early, and each byte that cannot start a sequence, becomes one U+FFFD.
// Rejected: C0, C1 and F5..FF lead bytes, overlong forms (E0 80..9F,
// F0 80..8F), surrogates (ED A0..BF), code points above U+10FFFF (F4 90..),
// stray continuation bytes and sequences cut short (also at the end).
//
// URL redaction works on bytes; a URL starts at "http://" or "https://"
// (any case) and ends at whitespace, a control character, a quote (" ' `),
// '<' or '>'. Its authority ends at the first '/', '\', '?' or '#'; if it
// contains '@', everything before the last '@' is replaced by "***". From the
// first '?' or '#' on, the rest of the URL is replaced by "?***".
#include "retry/text.hpp"

#include <algorithm>

namespace pgcourier::retry {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool InRange(unsigned char byte, unsigned char low, unsigned char high) { return byte >= low && byte <= high; }

// Length of the well-formed sequence at bytes[pos], or 0 if ill-formed; in
// that case *skip is the length of the maximal subpart to replace (>= 1).
std::size_t SequenceLength(std::string_view bytes, std::size_t pos, std::size_t* skip) {
  const auto lead = static_cast<unsigned char>(bytes[pos]);
  *skip = 1;
  if (lead == 0x00) return 0;
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char second_low = 0x80, second_high = 0xBF;
  if (InRange(lead, 0xC2, 0xDF)) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3, second_low = 0xA0;  // below: overlong
  } else if (InRange(lead, 0xE1, 0xEC) || InRange(lead, 0xEE, 0xEF)) {
    length = 3;
  } else if (lead == 0xED) {
    length = 3, second_high = 0x9F;  // above: surrogates D800..DFFF
  } else if (lead == 0xF0) {
    length = 4, second_low = 0x90;  // below: overlong
  } else if (InRange(lead, 0xF1, 0xF3)) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4, second_high = 0x8F;  // above: > U+10FFFF
  } else {
    return 0;  // continuation byte, C0/C1 (always overlong), F5..FF
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (pos + i >= bytes.size()) {
      *skip = i;
      return 0;
    }
    const auto byte = static_cast<unsigned char>(bytes[pos + i]);
    const bool ok = i == 1 ? InRange(byte, second_low, second_high) : InRange(byte, 0x80, 0xBF);
    if (!ok) {
      *skip = i;
      return 0;
    }
  }
  return length;
}

bool StartsWithNoCase(std::string_view text, std::size_t pos, std::string_view prefix) {
  if (text.size() - pos < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[pos + i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

bool EndsUrl(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte <= 0x20 || byte == 0x7f || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>';
}

// Appends the redacted form of `url`, whose scheme and "://" take the first
// scheme_length bytes.
void AppendRedactedUrl(std::string_view url, std::size_t scheme_length, std::string& out) {
  std::size_t authority_end = scheme_length;
  while (authority_end < url.size() && url[authority_end] != '/' && url[authority_end] != '\\' &&
         url[authority_end] != '?' && url[authority_end] != '#') {
    ++authority_end;
  }
  const std::string_view authority = url.substr(scheme_length, authority_end - scheme_length);
  out += url.substr(0, scheme_length);
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    out += "***";
    out += authority.substr(at);
  } else {
    out += authority;
  }
  const std::string_view rest = url.substr(authority_end);
  const std::size_t query = rest.find_first_of("?#");
  out += rest.substr(0, query);
  if (query != std::string_view::npos) out += "?***";
}

}  // namespace

std::string SanitizeUtf8(std::string_view bytes, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(bytes.size(), max_bytes));
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    std::size_t skip = 1;
    const std::size_t length = SequenceLength(bytes, pos, &skip);
    const std::string_view piece = length != 0 ? bytes.substr(pos, length) : kReplacement;
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    pos += length != 0 ? length : skip;
  }
  return out;
}

std::string RedactUrls(std::string_view text) {
  // Most texts (response bodies, error messages) hold no URL: one search instead of the walk below.
  if (text.find("://") == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t scheme_length = 0;
    if (StartsWithNoCase(text, pos, "https://")) {
      scheme_length = 8;
    } else if (StartsWithNoCase(text, pos, "http://")) {
      scheme_length = 7;
    }
    if (scheme_length == 0) {
      out += text[pos++];
      continue;
    }
    std::size_t end = pos + scheme_length;
    while (end < text.size() && !EndsUrl(text[end])) ++end;
    AppendRedactedUrl(text.substr(pos, end - pos), scheme_length, out);
    pos = end;
  }
  return out;
}

std::string RedactPath(std::string_view path) {
  const auto cut = path.find_first_of("?#");
  if (cut == std::string_view::npos) return std::string(path);
  return std::string(path.substr(0, cut)) + "?***";
}

std::string SafeSummary(std::string_view text, std::size_t max_bytes) {
  return SanitizeUtf8(RedactUrls(text), max_bytes);
}

}  // namespace pgcourier::retry

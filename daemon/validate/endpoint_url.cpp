#include "validate/endpoint_url.hpp"

#include <idn2.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace pgcourier::validate {
namespace {

constexpr std::size_t kMaxUrlBytes = 2048;
constexpr std::size_t kMaxHostLength = 253;
constexpr std::size_t kMaxLabelLength = 63;

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHostChar(char c) { return IsAsciiLetter(c) || IsDigit(c) || c == '-' || c == '_' || c == '.'; }
bool IsNonAscii(char c) { return static_cast<unsigned char>(c) >= 0x80; }

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return out;
}

// One UTF-8 sequence at text[i]: (code point, length), or nullopt when the
// bytes there are not valid UTF-8 (overlong forms and surrogates included).
std::optional<std::pair<char32_t, std::size_t>> DecodeUtf8(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return std::make_pair(static_cast<char32_t>(lead), std::size_t{1});
  std::size_t length = 0;
  char32_t cp = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    cp = lead & 0x07;
  } else {
    return std::nullopt;
  }
  if (i + length > text.size()) return std::nullopt;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr std::array<char32_t, 5> kMinimum{0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinimum[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  return std::make_pair(cp, length);
}

void AppendUtf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string CodePoint(unsigned value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", value);
  return buf;
}

UrlCheck Refuse(std::string message, std::string hint = "") {
  UrlCheck out;
  out.problem = {std::move(message), std::move(hint)};
  return out;
}

struct IdnFree {
  void operator()(void* p) const { idn2_free(p); }
};
using IdnString = std::unique_ptr<char, IdnFree>;

// The IDNA ASCII form of a host name, or nullopt (and why) when it has none.
std::optional<std::string> ToAscii(const std::string& host, std::string& why) {
  uint8_t* out = nullptr;
  const int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(host.c_str()), &out,
                                IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL | IDN2_USE_STD3_ASCII_RULES);
  IdnString owned(reinterpret_cast<char*>(out));
  if (rc != IDN2_OK || !owned) {
    why = idn2_strerror(rc);
    return std::nullopt;
  }
  return std::string(owned.get());
}

// The Unicode form of an IDNA ASCII host (or label), or nullopt.
std::optional<std::string> ToUnicode(const std::string& ascii) {
  char* out = nullptr;
  const int rc = idn2_to_unicode_8z8z(ascii.c_str(), &out, 0);
  IdnString owned(out);
  if (rc != IDN2_OK || !owned) return std::nullopt;
  return std::string(owned.get());
}

// The look-alike scripts: a label mixing two of them spells another name
// with letters that look the same (Latin 'a' and Cyrillic 'а').
enum class Script { kOther, kLatin, kGreek, kCyrillic };

Script ScriptOf(char32_t cp) {
  if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) ||
      (cp >= 0x1E00 && cp <= 0x1EFF) || (cp >= 0x2C60 && cp <= 0x2C7F) || (cp >= 0xA720 && cp <= 0xA7FF)) {
    return Script::kLatin;
  }
  if ((cp >= 0x370 && cp <= 0x3FF) || (cp >= 0x1F00 && cp <= 0x1FFF)) return Script::kGreek;
  if ((cp >= 0x400 && cp <= 0x52F) || (cp >= 0x1C80 && cp <= 0x1C8F) || (cp >= 0x2DE0 && cp <= 0x2DFF) ||
      (cp >= 0xA640 && cp <= 0xA69F)) {
    return Script::kCyrillic;
  }
  return Script::kOther;
}

const char* NameOf(Script s) {
  switch (s) {
    case Script::kLatin: return "Latin";
    case Script::kGreek: return "Greek";
    case Script::kCyrillic: return "Cyrillic";
    case Script::kOther: break;
  }
  return "other";
}

// "Cyrillic and Latin" when a label of the Unicode host mixes look-alike
// scripts, with the label; nullopt when none does.
std::optional<std::pair<std::string, std::string>> MixedScripts(std::string_view unicode_host) {
  std::size_t start = 0;
  while (start <= unicode_host.size()) {
    std::size_t end = unicode_host.find('.', start);
    if (end == std::string_view::npos) end = unicode_host.size();
    const std::string_view label = unicode_host.substr(start, end - start);
    std::vector<Script> seen;
    for (std::size_t i = 0; i < label.size();) {
      const auto decoded = DecodeUtf8(label, i);
      if (!decoded) break;
      const Script s = ScriptOf(decoded->first);
      if (s != Script::kOther && std::find(seen.begin(), seen.end(), s) == seen.end()) seen.push_back(s);
      i += decoded->second;
    }
    if (seen.size() > 1) {
      std::sort(seen.begin(), seen.end(), [](Script a, Script b) { return std::string_view(NameOf(a)) < NameOf(b); });
      return std::make_pair(std::string(label), std::string(NameOf(seen[0])) + " and " + NameOf(seen[1]));
    }
    start = end + 1;
  }
  return std::nullopt;
}

// The labels of a host name (no empty-host case: checked before).
std::vector<std::string_view> Labels(std::string_view host) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = host.find('.', start);
    out.push_back(host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

// The syntax of an ASCII host name; `shown` is how the operator wrote it.
std::optional<std::string> HostNameProblem(std::string_view host, std::string_view shown) {
  if (!std::all_of(host.begin(), host.end(), IsHostChar)) {
    return "host " + QuoteUntrusted(shown) + " is not a valid host name (ASCII letters, digits, '-', '_' and '.')";
  }
  if (host.back() == '.') return "host " + QuoteUntrusted(shown) + " ends with a dot; write it without the dot";
  if (host.size() > kMaxHostLength) {
    return "host name is " + std::to_string(host.size()) + " characters long; at most 253 are allowed";
  }
  for (const auto label : Labels(host)) {
    if (label.empty() || label.size() > kMaxLabelLength) {
      return "host " + QuoteUntrusted(shown) + " has an empty label or one longer than 63 characters";
    }
  }
  return std::nullopt;
}

// xn-- labels of a host given in ASCII must be valid IDNA: decodable, and
// the form IDNA gives that Unicode back.
std::optional<std::string> PunycodeProblem(std::string_view host) {
  for (const auto label : Labels(host)) {
    if (Lower(label.substr(0, 4)) != "xn--") continue;
    const auto unicode = ToUnicode(std::string(label));
    std::string why;
    const auto again = unicode ? ToAscii(*unicode, why) : std::nullopt;
    if (!again || *again != Lower(label)) {
      return "host label " + QuoteUntrusted(label) + " is not valid IDNA (punycode)";
    }
  }
  return std::nullopt;
}

// True for a last label that only an IP address would have (digits, or 0x and hex).
bool LooksNumeric(std::string_view label) {
  if (label.empty()) return false;
  if (std::all_of(label.begin(), label.end(), IsDigit)) return true;
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
    return std::all_of(label.begin() + 2, label.end(), [](char c) {
      return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
  }
  return false;
}

}  // namespace

std::string QuoteUntrusted(std::string_view text) {
  std::string out = "\"";
  std::size_t characters = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (characters == 64) {
      out += "\"...";
      return out;
    }
    const auto decoded = DecodeUtf8(text, i);
    const char32_t cp = decoded ? decoded->first : 0xFFFD;
    i += decoded ? decoded->second : 1;
    ++characters;
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (cp < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
          out += buf;
        } else {
          AppendUtf8(out, cp);
        }
    }
  }
  return out + "\"";
}

UrlCheck ParseEndpointUrl(std::string_view text) {
  if (text.size() > kMaxUrlBytes) {
    return Refuse("the URL is " + std::to_string(text.size()) + " bytes long; at most 2048 are allowed");
  }
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      return Refuse("the URL contains the control character " + CodePoint(byte) + "; percent-encode data in a URL");
    }
  }
  if (text.find(' ') != std::string_view::npos) return Refuse("the URL contains a space; percent-encode it as %20");

  std::size_t colon = 0;
  if (!text.empty() && IsAsciiLetter(text[0])) {
    colon = 1;
    while (colon < text.size() && (IsAsciiLetter(text[colon]) || IsDigit(text[colon]) || text[colon] == '+' ||
                                   text[colon] == '.' || text[colon] == '-')) {
      ++colon;
    }
  }
  if (colon == 0 || colon >= text.size() || text[colon] != ':') {
    return Refuse(QuoteUntrusted(text) + " is not an absolute URL; expected http://HOST/PATH or https://HOST/PATH");
  }
  EndpointUrl url;
  url.scheme = Lower(text.substr(0, colon));
  if (url.scheme != "http" && url.scheme != "https") {
    return Refuse("scheme " + QuoteUntrusted(url.scheme) + " is not allowed; only http and https are");
  }
  std::string_view rest = text.substr(colon + 1);
  if (rest.substr(0, 2) != "//") return Refuse("expected // after " + url.scheme + ":");
  rest.remove_prefix(2);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  const std::string_view tail = rest.substr(authority.size());  // path, query
  if (authority.find('@') != std::string_view::npos) {
    return Refuse("user:password@ is not allowed in a URL (it would be stored and shown in plain text)",
                  "Receivers authenticate pgcourier by verifying the Standard Webhooks signature (webhook-signature "
                  "header) with their signing secret; put no credentials in the URL.");
  }
  if (text.find('\\') != std::string_view::npos) {
    return Refuse("the URL contains a backslash; percent-encode it as %5C");
  }
  if (text.find('#') != std::string_view::npos) {
    return Refuse("the URL has a fragment (#...), which is never sent to a receiver; remove it");
  }

  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {
    const std::size_t close = authority.find(']');
    const std::string_view inside = close == std::string_view::npos ? std::string_view() : authority.substr(1, close - 1);
    const std::string_view after = close == std::string_view::npos ? std::string_view() : authority.substr(close + 1);
    const bool chars_ok = !inside.empty() && inside.find(':') != std::string_view::npos &&
                          std::all_of(inside.begin(), inside.end(), [](char c) {
                            return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
                                   c == '.';
                          });
    const auto address = chars_ok ? netguard::ParseIpLiteral(inside) : std::nullopt;
    if (!address || address->family != AF_INET6 || (!after.empty() && after[0] != ':')) {
      return Refuse("host " + QuoteUntrusted(authority) + " is not a valid IPv6 literal");
    }
    has_port = !after.empty();
    if (has_port) port = after.substr(1);
    url.host = "[" + netguard::ToString(*address) + "]";
    if (url.host != "[" + Lower(inside) + "]") {
      url.rewritten = "host [" + std::string(inside) + "] is stored in its canonical form " + url.host;
    }
  } else {
    const std::size_t port_colon = authority.find(':');
    const std::string_view host = authority.substr(0, port_colon);
    has_port = port_colon != std::string_view::npos;
    if (has_port) port = authority.substr(port_colon + 1);
    if (host.empty()) return Refuse("the URL has no host");
    if (std::any_of(host.begin(), host.end(), IsNonAscii)) {
      for (std::size_t i = 0; i < host.size();) {
        const auto decoded = DecodeUtf8(host, i);
        if (!decoded) return Refuse("host " + QuoteUntrusted(host) + " is not valid UTF-8");
        i += decoded->second;
      }
      std::string why;
      const auto ascii = ToAscii(std::string(host), why);
      if (!ascii) {
        return Refuse("host " + QuoteUntrusted(host) + " has no IDNA ASCII form (" + why +
                      "); check it for characters that are not allowed in host names");
      }
      if (const auto mixed = MixedScripts(ToUnicode(*ascii).value_or(std::string(host)))) {
        return Refuse("host " + QuoteUntrusted(host) + ": the label " + QuoteUntrusted(mixed->first) + " mixes " +
                      mixed->second + " letters (a look-alike of another name); use one script per label");
      }
      if (auto problem = HostNameProblem(*ascii, host)) return Refuse(std::move(*problem));
      url.host = *ascii;
      url.rewritten = "host " + std::string(host) + " is stored in its IDNA ASCII form " + url.host;
    } else {
      if (auto problem = HostNameProblem(host, host)) return Refuse(std::move(*problem));
      if (auto problem = PunycodeProblem(host)) return Refuse(std::move(*problem));
      url.host = Lower(host);
    }
    const auto labels = Labels(url.host);
    if (const auto address = netguard::ParseIpLiteral(url.host)) {
      const std::string canonical = netguard::ToString(*address);
      if (canonical != url.host) {
        return Refuse("host " + QuoteUntrusted(host) + " is an IP address in a legacy spelling; write it as " +
                      canonical);
      }
    } else if (LooksNumeric(labels.back())) {
      return Refuse("host " + QuoteUntrusted(host) +
                    " is an IP address in a legacy spelling (or not a valid one); write it as a dotted quad such as "
                    "127.0.0.1");
    }
  }
  if (has_port) {
    const bool digits = !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), IsDigit);
    const long value = digits ? std::strtol(std::string(port).c_str(), nullptr, 10) : 0;
    if (value < 1 || value > 65535) {
      return Refuse("port " + QuoteUntrusted(port) + " is not a number from 1 to 65535");
    }
  }
  for (std::size_t i = 0; i < tail.size(); ++i) {
    if (!IsNonAscii(tail[i])) continue;
    const auto decoded = DecodeUtf8(tail, i);
    const std::string shown = decoded ? std::string(tail.substr(i, decoded->second)) : "\xEF\xBF\xBD";
    return Refuse("the URL contains the non-ASCII character " + QuoteUntrusted(shown) +
                  " in its path or query; percent-encode it (UTF-8)");
  }
  url.url = url.scheme + "://" + url.host + (has_port ? ":" + std::string(port) : "") + std::string(tail);
  if (url.rewritten.empty() && url.url != text) url.rewritten = "the scheme and host are stored in lower case";
  return UrlCheck{std::move(url), {}};
}

std::optional<std::string> CheckDestination(const EndpointUrl& url, const netguard::EndpointRules& rules) {
  return netguard::CheckUrlTarget(url.scheme, url.host, rules);
}

}  // namespace pgcourier::validate

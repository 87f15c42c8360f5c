// Making untrusted text safe to store and log: bounded length, valid UTF-8,
// no NUL bytes, and no credentials or query strings from URLs. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pgcourier::retry {

// Replaces invalid UTF-8 sequences and NUL bytes with U+FFFD and truncates to
// at most max_bytes without splitting a character.
std::string SanitizeUtf8(std::string_view bytes, std::size_t max_bytes);

// In every http:// or https:// URL inside text: removes "user:password@"
// (replaced by "***@") and the query string and fragment (replaced by "?***").
std::string RedactUrls(std::string_view text);

// A request path with its query string and fragment replaced by "?***"
// ("/v1/send?token=abc" -> "/v1/send?***"): the same rule as RedactUrls, for
// the path of an integration run, which has no scheme to be recognised by.
std::string RedactPath(std::string_view path);

// RedactUrls + SanitizeUtf8(max_bytes). For error summaries (max 512).
std::string SafeSummary(std::string_view text, std::size_t max_bytes = 512);

}  // namespace pgcourier::retry

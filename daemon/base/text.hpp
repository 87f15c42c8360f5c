// Small text helpers several modules share: JSON string quoting for bodies
// the daemon writes itself, the W3C traceparent of a trace id, and cutting
// UTF-8 text on a character boundary. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgcourier::base {

// JSON string literal (with quotes) for arbitrary UTF-8 text.
std::string JsonQuote(std::string_view text);

// A W3C traceparent header value for a trace id: passed through when it
// already is one, built with span_id when it is a bare 32-hex trace id,
// empty otherwise (so nothing a producer wrote reaches a header unchecked).
std::string TraceParent(std::string_view trace_id, std::uint64_t span_id);

// The longest prefix of `text` of at most `max_bytes` that does not end
// inside a UTF-8 character (text that is valid UTF-8 stays valid).
std::string_view Utf8Prefix(std::string_view text, std::size_t max_bytes);

}  // namespace pgcourier::base

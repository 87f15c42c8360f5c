// The last line of defence before bytes reach the network: whatever built a
// request (a delivery, a run, an OAuth2 token fetch, a health probe) and
// wherever its values came from (producer-chosen event ids, trace ids, run
// headers, idempotency keys), a header or URL that could split the request
// is refused and the request is never sent. Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcourier::http {

// A "Name: value" (or "Name:", which removes a header curl would add) line:
// the name must be an RFC 9110 token, the value must hold no control
// character but HTAB (no CR, LF, NUL, DEL). nullopt when it is fine, else why,
// naming the header but never quoting its value (it may be a credential).
std::optional<std::string> HeaderLineProblem(std::string_view line);

// The first problem of any header line, or of the URL (control characters,
// spaces), or nullopt.
std::optional<std::string> RequestProblem(std::string_view url, const std::vector<std::string>& headers);

// A value that may go into a header as it is (a user agent, an id): no
// control character but HTAB.
bool IsSafeHeaderValue(std::string_view value);

}  // namespace pgcourier::http

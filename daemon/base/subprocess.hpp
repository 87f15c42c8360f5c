// RunCaptured: runs one executable the way secret managers run rotation
// functions, for credential rotation commands: no shell (posix_spawn with
// argv = {path}), stdin and stderr on /dev/null, stdout captured up to
// max_output bytes (more is a failure), killed (SIGKILL) at the timeout,
// with the default signal mask and dispositions (the daemon blocks its
// signals before starting threads; the child must not inherit that). The
// output is returned to the caller only and never logged here; error texts
// never contain it. Blocking; thread-safe (no shared state).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace pgcourier::base {

struct CapturedOutput {
  bool ok = false;     // exited with status 0 within the timeout and the size bound
  std::string output;  // stdout (only when ok)
  std::string error;   // why not ok: "exited with status 3", "timed out after 10s", ...
};

CapturedOutput RunCaptured(const std::string& path, std::chrono::milliseconds timeout, std::size_t max_output);

}  // namespace pgcourier::base

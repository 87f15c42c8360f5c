// Reading small files whose path an operator (or an attacker who can write a
// configuration) controls: settings, policies, key files, credential files.
//
// The path is opened with O_NONBLOCK, so a FIFO or a device never blocks the
// calling thread (the daemon's main thread also handles signals), and fstat()
// decides before a byte is read: a regular file, at most `max_bytes` long, or
// a clear refusal. A symlink to /dev/zero is a character device: refused.
// Pure functions of the file system; thread-safe.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace pgcourier::base {

// What went wrong, as one line that starts with the path ("PATH: is a FIFO,
// not a regular file"). The message never contains the file's content.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ReadOptions {
  std::size_t max_bytes = std::size_t{1} << 20;  // larger files are refused, not truncated
  // Also accept a pipe or FIFO that already has a writer (pgcourierctl's
  // --from-file /dev/stdin or <(command)); read to its end, up to max_bytes.
  // Never for the daemon.
  bool allow_stream = false;
  // Overwrite what was read before throwing (key and secret files).
  bool wipe_on_error = false;
};

// The whole content of the file at `path`. Throws FileError.
std::string ReadSmallFile(const std::string& path, const ReadOptions& options = {});

// Overwrites the bytes of `text` so the optimiser cannot drop the writes.
void Wipe(std::string& text);

}  // namespace pgcourier::base

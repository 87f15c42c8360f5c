#include "base/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>  // explicit_bzero (glibc declares it in <string.h>)
#include <system_error>

namespace pgcourier::base {
namespace {

std::string ErrnoText(int error) { return std::generic_category().message(error); }

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

class Closer {
 public:
  explicit Closer(int fd) : fd_(fd) {}
  ~Closer() { close(fd_); }
  Closer(const Closer&) = delete;
  Closer& operator=(const Closer&) = delete;

 private:
  int fd_;
};

}  // namespace

void Wipe(std::string& text) {
  if (!text.empty()) explicit_bzero(text.data(), text.size());
  text.clear();
}

std::string ReadSmallFile(const std::string& path, const ReadOptions& options) {
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw FileError(path + ": cannot open: " + ErrnoText(errno));
  Closer closer(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0) throw FileError(path + ": cannot stat: " + ErrnoText(errno));
  const bool stream = S_ISFIFO(st.st_mode);
  if (!S_ISREG(st.st_mode) && !(stream && options.allow_stream)) {
    throw FileError(path + ": is " + KindOf(st.st_mode) + ", not a regular file; refusing to read it");
  }
  if (!stream && static_cast<unsigned long long>(st.st_size) > options.max_bytes) {
    throw FileError(path + ": is too large (" + std::to_string(st.st_size) + " bytes, over the limit of " +
                    std::to_string(options.max_bytes) + " bytes for this file)");
  }
  if (stream) {
    // A pipe the caller chose to read: wait for its writer like a plain read would.
    const int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  std::string content;
  content.reserve(stream ? 4096 : static_cast<std::size_t>(st.st_size));
  char buffer[8192];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      if (options.wipe_on_error) Wipe(content);
      explicit_bzero(buffer, sizeof buffer);
      throw FileError(path + ": cannot read: " + ErrnoText(error));
    }
    if (n == 0) break;
    if (content.size() + static_cast<std::size_t>(n) > options.max_bytes) {
      // A regular file that grew since fstat, or a stream: still bounded.
      if (options.wipe_on_error) Wipe(content);
      explicit_bzero(buffer, sizeof buffer);
      throw FileError(path + ": is too large (over the limit of " + std::to_string(options.max_bytes) +
                      " bytes for this file)");
    }
    content.append(buffer, static_cast<std::size_t>(n));
  }
  explicit_bzero(buffer, sizeof buffer);
  return content;
}

}  // namespace pgcourier::base

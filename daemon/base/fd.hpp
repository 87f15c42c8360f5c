// RAII for file descriptors: FileDescriptor owns one (closed on destruction,
// never copied), EventFd is the non-blocking eventfd every thread boundary of
// the daemon uses to wake a poll loop (the executor's completions, the
// writer's results, the engine's control fd). Thread-safety: Signal() and
// Drain() may be called from any thread; construction and destruction by the
// owner only.
#pragma once

#include <cstdint>

namespace pgcourier::base {

class FileDescriptor {
 public:
  FileDescriptor() = default;
  // Takes ownership of `fd`. A negative fd throws std::system_error naming
  // `what` with errno's text (so `FileDescriptor(open(...), "open")` checks).
  FileDescriptor(int fd, const char* what);
  ~FileDescriptor();
  FileDescriptor(FileDescriptor&& other) noexcept;
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A non-blocking, close-on-exec eventfd: Signal() makes it readable, Drain()
// reads it back to not readable.
class EventFd {
 public:
  EventFd();  // throws std::system_error
  void Signal() const;
  void Drain() const;
  int fd() const { return fd_.get(); }

 private:
  FileDescriptor fd_;
};

}  // namespace pgcourier::base

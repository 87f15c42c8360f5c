#include "base/fd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace pgcourier::base {

FileDescriptor::FileDescriptor(int fd, const char* what) : fd_(fd) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), what);
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) close(fd_);
}

FileDescriptor::FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

EventFd::EventFd() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd") {}

void EventFd::Signal() const {
  const std::uint64_t one = 1;
  // EAGAIN only when the counter would overflow: it is readable then anyway.
  (void)!write(fd_.get(), &one, sizeof one);
}

void EventFd::Drain() const {
  std::uint64_t value = 0;
  (void)!read(fd_.get(), &value, sizeof value);  // EAGAIN when already drained
}

}  // namespace pgcourier::base

#include "base/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <system_error>
#include <vector>

#include "base/fd.hpp"

extern char** environ;

namespace pgcourier::base {
namespace {

// posix_spawn attributes and file actions, destroyed with their owner.
struct SpawnSetup {
  posix_spawnattr_t attr{};
  posix_spawn_file_actions_t actions{};
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended abnormally";
}

}  // namespace

CapturedOutput RunCaptured(const std::string& path, std::chrono::milliseconds timeout, std::size_t max_output) {
  CapturedOutput out;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    out.error = "cannot create a pipe: " + std::system_category().message(errno);
    return out;
  }
  FileDescriptor read_end(fds[0], "pipe");
  FileDescriptor write_end(fds[1], "pipe");
  SpawnSetup setup;
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setsigdefault(&setup.attr, &all);
  posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&setup.attr, 0);
  posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&setup.actions, write_end.get(), 1);
  posix_spawn_file_actions_addopen(&setup.actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char> arg0(path.begin(), path.end());
  arg0.push_back('\0');
  char* argv[] = {arg0.data(), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, path.c_str(), &setup.actions, &setup.attr, argv, environ);
  write_end = FileDescriptor();
  if (spawned != 0) {
    out.error = "cannot be started: " + std::system_category().message(spawned);
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string output;
  bool timed_out = false;
  bool too_long = false;
  char buffer[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = ready == 0;
      break;
    }
    const ssize_t n = read(read_end.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // end of output
    if (output.size() + static_cast<std::size_t>(n) > max_output) {
      too_long = true;
      break;
    }
    output.append(buffer, static_cast<std::size_t>(n));
  }
  if (timed_out || too_long) kill(-pid, SIGKILL);  // its whole process group
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (timed_out) {
    out.error = "timed out after " + std::to_string(timeout.count()) + " ms (killed)";
  } else if (too_long) {
    out.error = "printed more than " + std::to_string(max_output) + " bytes (killed)";
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    out.error = DescribeStatus(status);
  } else {
    out.ok = true;
    out.output = std::move(output);
  }
  return out;
}

}  // namespace pgcourier::base

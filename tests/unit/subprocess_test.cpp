// base::RunCaptured, the runner of credential rotation commands: exit status,
// timeout, output bound, no shell, and the output kept out of error texts.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "base/subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using pgcourier::base::RunCaptured;

// An executable shell script in a fresh temporary directory, removed with it.
class Script {
 public:
  explicit Script(const std::string& body) {
    char dir[] = "/tmp/pgc-subprocess-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    dir_ = dir;
    path_ = dir_ + "/command";
    std::ofstream(path_) << "#!/bin/sh\n" << body;
    REQUIRE(chmod(path_.c_str(), 0700) == 0);
  }
  ~Script() {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  Script(const Script&) = delete;
  Script& operator=(const Script&) = delete;
  operator const std::string&() const { return path_; }  // NOLINT(google-explicit-constructor)

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace

TEST_CASE("rotation command: stdout of a command exiting 0 is its output") {
  const auto r = RunCaptured(Script("printf 'sk_new\\n'\necho noise >&2\n"), 5s, 1024);
  CHECK(r.ok);
  CHECK(r.output == "sk_new\n");
  CHECK(r.error.empty());
}

TEST_CASE("rotation command: a non-zero exit is a failure that does not quote the output") {
  const auto r = RunCaptured(Script("echo sk_secret_half\nexit 3\n"), 5s, 1024);
  CHECK_FALSE(r.ok);
  CHECK(r.error == "exited with status 3");
  CHECK(r.output.empty());
}

TEST_CASE("rotation command: killed at the timeout, with its children") {
  const auto started = std::chrono::steady_clock::now();
  const auto r = RunCaptured(Script("sleep 30 &\nsleep 30\n"), 300ms, 1024);
  CHECK_FALSE(r.ok);
  CHECK(r.error == "timed out after 300 ms (killed)");
  CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("rotation command: more output than the bound is a failure") {
  const auto r = RunCaptured(Script("head -c 100000 /dev/zero\n"), 5s, 4096);
  CHECK_FALSE(r.ok);
  CHECK(r.error == "printed more than 4096 bytes (killed)");
}

TEST_CASE("rotation command: the path is executed as it is, never through a shell") {
  const auto r = RunCaptured("/bin/echo hello; touch /tmp/pgc-pwned", 5s, 1024);
  CHECK_FALSE(r.ok);
  CHECK(r.error.rfind("cannot be started: ", 0) == 0);
  CHECK(access("/tmp/pgc-pwned", F_OK) != 0);
}

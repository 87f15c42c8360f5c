// base::ReadSmallFile: hostile paths (issue 13) get a clear refusal without
// blocking the caller or reading without bound.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "base/file.hpp"

using pgcourier::base::FileError;
using pgcourier::base::ReadOptions;
using pgcourier::base::ReadSmallFile;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char pattern[] = "/tmp/pgcourier-file-test.XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::string ErrorOf(const std::string& path, const ReadOptions& options = {}) {
  try {
    ReadSmallFile(path, options);
  } catch (const FileError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a regular file is read whole") {
  TempDir dir;
  const auto file = (dir.path / "policies.yaml").string();
  std::ofstream(file) << "default:\n  max_attempts: 3\n";
  CHECK(ReadSmallFile(file) == "default:\n  max_attempts: 3\n");
}

TEST_CASE("a FIFO is refused at once instead of blocking in open()") {
  TempDir dir;
  const auto fifo = (dir.path / "policies.yaml").string();
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  const auto start = std::chrono::steady_clock::now();
  const std::string error = ErrorOf(fifo);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  CHECK(error.find(fifo) == 0);
  CHECK(error.find("is a FIFO, not a regular file") != std::string::npos);
}

TEST_CASE("a symlink to /dev/zero is refused before a byte is read") {
  TempDir dir;
  const auto link = (dir.path / "policies.yaml").string();
  std::filesystem::create_symlink("/dev/zero", link);
  CHECK(ErrorOf(link).find("is a character device, not a regular file") != std::string::npos);
}

TEST_CASE("a directory and a missing file are refused with the reason") {
  TempDir dir;
  CHECK(ErrorOf(dir.path.string()).find("is a directory") != std::string::npos);
  CHECK(ErrorOf((dir.path / "missing").string()).find("cannot open: No such file or directory") !=
        std::string::npos);
}

TEST_CASE("a file over the limit is refused, not truncated") {
  TempDir dir;
  const auto file = (dir.path / "big").string();
  std::ofstream(file) << std::string(2048, 'x');
  const std::string error = ErrorOf(file, ReadOptions{1024});
  CHECK(error.find("is too large (2048 bytes, over the limit of 1024 bytes") != std::string::npos);
  CHECK(ReadSmallFile(file, ReadOptions{4096}).size() == 2048);
}

TEST_CASE("a pipe is read only when the caller allows streams, and still bounded") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const std::string path = "/proc/self/fd/" + std::to_string(fds[0]);
  CHECK(ErrorOf(path).find("is a FIFO") != std::string::npos);
  std::thread writer([&] {
    const std::string text = "sk_live_123\n";
    CHECK(write(fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fds[1]);
  });
  CHECK(ReadSmallFile(path, ReadOptions{1024, true}) == "sk_live_123\n");
  writer.join();
  close(fds[0]);
}

// A rotation command's output as a secret (lanes/runs/rotation.hpp).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lanes/runs/rotation.hpp"

using pgcourier::lanes::runs::SecretOfOutput;

TEST_CASE("a rotation command's one line is the secret, its line end removed") {
  CHECK(SecretOfOutput("s3cret\n").output == "s3cret");
  CHECK(SecretOfOutput("s3cret\r\n").output == "s3cret");
  CHECK(SecretOfOutput("s3cret").output == "s3cret");
  CHECK(SecretOfOutput("with spaces and = signs\n").ok);
}

TEST_CASE("nothing, two lines or control characters are not a secret, and the error does not repeat the output") {
  const std::vector<std::string> outputs = {
      "", "\n", "\r\n", "pw1\npw2\n", "pw1\n\n", "tab\there\n", std::string("nul\0x\n", 6), "del\x7f\n"};
  for (const std::string& bad : outputs) {
    const auto r = SecretOfOutput(bad);
    CHECK_FALSE(r.ok);
    CHECK(r.output.empty());
    CHECK_FALSE(r.error.empty());
    if (bad.size() > 2) CHECK(r.error.find(bad.substr(0, 3)) == std::string::npos);
  }
}

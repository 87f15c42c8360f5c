#include "lanes/runs/rotation.hpp"

#include <algorithm>
#include <utility>

namespace pgcourier::lanes::runs {

base::CapturedOutput SecretOfOutput(std::string output) {
  base::CapturedOutput r;
  if (output.size() >= 2 && output.compare(output.size() - 2, 2, "\r\n") == 0) {
    output.resize(output.size() - 2);
  } else if (!output.empty() && output.back() == '\n') {
    output.pop_back();
  }
  if (output.empty()) {
    r.error = "it printed nothing";
    return r;
  }
  if (std::any_of(output.begin(), output.end(),
                  [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; })) {
    r.error = "it printed more than one line or control characters";
    return r;
  }
  r.ok = true;
  r.output = std::move(output);
  return r;
}

base::CapturedOutput RunRotationCommand(const std::string& command) {
  auto result = base::RunCaptured(command, kRotationCommandTimeout, kMaxRotationOutput);
  if (!result.ok) return result;
  return SecretOfOutput(std::move(result.output));
}

}  // namespace pgcourier::lanes::runs

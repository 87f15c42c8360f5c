// Rotation commands (rotation policies, 70_providers.sql): the executable a
// credential's rotation policy names prints the new secret on one line. This
// runs it (base::RunCaptured: no shell, bounded in time and output) and
// decides whether what it printed is a secret: one line, no control
// characters, not empty. The output is returned to the caller only; no error
// text contains it. Blocking; thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "base/subprocess.hpp"

namespace pgcourier::lanes::runs {

constexpr std::chrono::milliseconds kRotationCommandTimeout{10000};
constexpr std::size_t kMaxRotationOutput = std::size_t{64} * 1024;

// ok: `output` is the new secret (its line end removed).
base::CapturedOutput RunRotationCommand(const std::string& command);

// The secret in a command's output (one trailing "\n" or "\r\n" removed), or
// why it is not one; pure.
base::CapturedOutput SecretOfOutput(std::string output);

}  // namespace pgcourier::lanes::runs

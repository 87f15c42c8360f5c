// Loading and validating the policies YAML file into model::Policy values.
// Errors name the file, the YAML path (e.g. policies.default.backoff.factor)
// and what was expected. Unknown keys are errors.
// PolicySet is an immutable value after loading; share it as
// std::shared_ptr<const PolicySet> between threads.
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/policy.hpp"

namespace pgcourier::config {

// Thrown when a configuration or policies file is invalid; what() lists every
// problem found, one per line, each "FILE: YAML.PATH: message".
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

class PolicySet {
 public:
  PolicySet() = default;
  explicit PolicySet(std::map<std::string, model::Policy> policies);
  // nullptr when no policy has that name.
  const model::Policy* Find(const std::string& name) const;
  const std::map<std::string, model::Policy>& all() const { return policies_; }
  // The longest request_timeout of all policies (for lease sizing).
  model::Millis LongestRequestTimeout() const;

 private:
  std::map<std::string, model::Policy> policies_;
};

// Parses YAML text; `source` is the file name used in messages. Throws ConfigError.
PolicySet ParsePolicies(const std::string& yaml_text, const std::string& source);
// Reads and parses a file. Throws ConfigError (also for an unreadable file).
PolicySet LoadPoliciesFile(const std::string& path);

}  // namespace pgcourier::config

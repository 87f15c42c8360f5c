// UrlCheck: the URLs the API is given (a subscription's `url`, a connection's
// `base_url` and `token_url`), checked at the door against the policies file
// as pgcourierctl checks them (tools/ctl/context.cpp): the URL's syntax
// (validate::ParseEndpointUrl), that its policy exists, and that the
// policy's endpoint rules (netguard::CompileEndpointRules, the daemon's own,
// allow_only_hosts included) let the daemon contact it. Without a policies
// file (none configured, or unreadable at start) only the syntax is checked
// here; the database's check_endpoint_url and the daemon's checks before
// every request still apply.
//
// Reload() re-reads the file (SIGHUP): an invalid file is refused as a whole
// and the previous policies stay. Thread-safe: Check() takes a snapshot.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "config/policies.hpp"

namespace pgcourier::gateway {

class UrlCheck {
 public:
  // `file` empty: syntax only. A file that cannot be loaded is logged and
  // treated as empty until a Reload() succeeds.
  explicit UrlCheck(std::string file);

  // false (logged, the previous policies kept) when the file is invalid.
  bool Reload();

  struct Refusal {
    std::string field;   // "url", "base_url", "token_url" or "policy"
    std::string detail;  // what is wrong, for the problem document
  };
  // Why `url` (the body's `field`) may not be used under `policy`, or nullopt.
  std::optional<Refusal> Check(const std::string& field, const std::string& url, const std::string& policy) const;

 private:
  std::shared_ptr<const config::PolicySet> Snapshot() const;

  const std::string file_;
  mutable std::mutex mu_;
  std::shared_ptr<const config::PolicySet> policies_;  // null: syntax only
};

}  // namespace pgcourier::gateway

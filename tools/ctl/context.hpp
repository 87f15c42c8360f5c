// What a pgcourierctl command runs with besides its own options: the
// database, the master key, the policies that URLs are checked against, and
// how it reports (exit codes: 0 done, 1 refused or failed, 2 usage error).
//
// pgcourierctl reads the same files as the daemon's unit: pgcourierd's
// settings file (--config, PGCOURIER_CONFIG, else /etc/pgcourier/pgcourierd.yaml
// when it exists) for database_url, policies_file and master_key_file; beside
// it, master.key (the key the unit hands the daemon) and pgpass (used as
// PGPASSFILE when that is not set). Explicit options and the environment win
// over the file. Not thread-safe (it may set PGPASSFILE before connecting).
#pragma once

#include <optional>
#include <string>

#include "config/policies.hpp"
#include "ctl/args.hpp"
#include "signing/secret_box.hpp"
#include "validate/endpoint_url.hpp"

namespace pgcourier::ctl {

// "pgcourierctl: MESSAGE" on stderr; the exit code.
int Fail(const std::string& message);        // 1
int UsageError(const std::string& message);  // 2
// "pgcourierctl: warning: MESSAGE" / "note: MESSAGE" on stderr.
void Warn(const std::string& message);
void Note(const std::string& message);

// The shard map file: --shard-map, else PGCOURIER_SHARD_MAP; nullopt (or "") when none.
std::optional<std::string> ShardMapFile(const Invocation& invocation);

class Context {
 public:
  // Reads the settings file when there is one. Throws std::runtime_error
  // when a file named explicitly cannot be used.
  explicit Context(const Invocation& invocation);

  // --database-url; else with a shard map (--shard-map, PGCOURIER_SHARD_MAP)
  // the URL of --shard, or of the shard of --tenant; else DATABASE_URL, else
  // the settings file's, else "" (the libpq environment).
  const std::string& DatabaseUrl() const { return database_url_; }
  // The shard the URL came from; "" without a shard map.
  const std::string& Shard() const { return shard_; }
  // The master key; nullopt after saying on stderr why there is none.
  std::optional<signing::SecretBox> MasterKey() const;

  // The URL of `option` (e.g. "url", "base-url") checked as the daemon would:
  // syntax (exit 2 when wrong), then policy `policy`'s endpoint rules from the
  // policies file, when it is at hand (exit 1 when they refuse it, or when
  // the policy does not exist; a warning when the file is not at hand).
  // Returns the URL to store, or nullopt with `exit_code` set after saying why.
  std::optional<validate::EndpointUrl> CheckUrl(const std::string& option, const std::string& text,
                                                const std::string& policy, int& exit_code) const;
  // The policy exists in the policies file when it is at hand (else a
  // warning); exit 1 and a message when it does not.
  bool CheckPolicy(const std::string& policy) const;

 private:
  // The policies, loaded on first use; nullptr (after one warning) when the
  // file is not at hand.
  const config::PolicySet* Policies() const;

  std::string database_url_;
  std::string shard_;
  std::string master_key_file_;
  std::string policies_file_;  // empty: none
  mutable bool policies_loaded_ = false;
  mutable std::optional<config::PolicySet> policies_;
};

}  // namespace pgcourier::ctl

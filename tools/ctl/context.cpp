#include "ctl/context.hpp"

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "config/settings.hpp"
#include "config/shard_map.hpp"
#include "netguard/egress.hpp"

namespace pgcourier::ctl {
namespace {

constexpr const char* kDefaultConfig = "/etc/pgcourier/pgcourierd.yaml";
constexpr const char* kDefaultPolicies = "/etc/pgcourier/policies.yaml";

std::optional<std::string> Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::optional<std::string>(value) : std::nullopt;
}

// The explicit choice (option, then environment), if any.
std::optional<std::string> Chosen(const Invocation& inv, const char* option, const char* env) {
  if (inv.Has(option)) return inv.Text(option);
  return Env(env);
}

}  // namespace

int Fail(const std::string& message) {
  std::cerr << "pgcourierctl: " << message << "\n";
  return 1;
}

int UsageError(const std::string& message) {
  std::cerr << "pgcourierctl: " << message << "\n";
  return 2;
}

void Warn(const std::string& message) { std::cerr << "pgcourierctl: warning: " << message << "\n"; }

void Note(const std::string& message) { std::cerr << "note: " << message << "\n"; }

std::optional<std::string> ShardMapFile(const Invocation& inv) {
  return Chosen(inv, "shard-map", "PGCOURIER_SHARD_MAP");
}

Context::Context(const Invocation& inv) {
  const auto chosen_config = Chosen(inv, "config", "PGCOURIER_CONFIG");
  std::string config_file = chosen_config.value_or(std::filesystem::exists(kDefaultConfig) ? kDefaultConfig : "");
  std::optional<config::Settings> settings;
  if (!config_file.empty()) {
    try {
      settings = config::LoadSettingsFile(config_file);
    } catch (const std::exception& e) {
      // A file named explicitly must work; the default one is the daemon's business.
      if (chosen_config) throw std::runtime_error(std::string("cannot use the settings file: ") + e.what());
      Warn(std::string("ignoring the settings file: ") + e.what());
    }
  }
  const std::string dir =
      settings ? std::filesystem::path(config_file).parent_path().string() : std::string();

  const auto shard_map = ShardMapFile(inv);
  if (inv.Has("shard") && (!shard_map || shard_map->empty())) {
    throw std::runtime_error("--shard needs a shard map (--shard-map FILE or PGCOURIER_SHARD_MAP)");
  }
  if (inv.Has("database-url")) {
    if (shard_map && !shard_map->empty()) {
      throw std::runtime_error("--database-url and a shard map (--shard-map, PGCOURIER_SHARD_MAP) both say where "
                               "the database is: give one of them");
    }
    database_url_ = inv.Text("database-url");
  } else if (shard_map && !shard_map->empty()) {
    const auto map = config::LoadShardMapFile(*shard_map);
    std::string names;
    for (const auto& [name, url] : map.shards) names += (names.empty() ? "" : ", ") + name;
    if (inv.Has("shard")) {
      shard_ = inv.Text("shard");
      if (!map.shards.count(shard_)) {
        throw std::runtime_error("no shard named '" + shard_ + "' in " + *shard_map + " (its shards: " + names + ")");
      }
    } else if (inv.Has("tenant")) {
      const std::string tenant = inv.Text("tenant");
      const auto shard = map.ShardOf(tenant);
      if (!shard) {
        throw std::runtime_error("tenant '" + tenant + "' is in no shard of " + *shard_map +
                                 " (not under tenants, and the map has no default)");
      }
      shard_ = *shard;
    } else if (map.shards.size() == 1) {
      shard_ = map.shards.begin()->first;
    } else {
      throw std::runtime_error("with a shard map of several shards, say which: --tenant TENANT or --shard NAME "
                               "(one of " + names + ")");
    }
    database_url_ = map.shards.at(shard_);
  } else if (auto env = Env("DATABASE_URL")) {
    database_url_ = *env;
  } else if (settings) {
    database_url_ = settings->database_url;
  }

  if (auto key = Chosen(inv, "master-key-file", "PGCOURIER_MASTER_KEY_FILE")) {
    master_key_file_ = *key;
  } else if (settings && !settings->master_key_file.empty()) {
    master_key_file_ = settings->master_key_file;
  } else if (settings && std::filesystem::exists(dir + "/master.key")) {
    master_key_file_ = dir + "/master.key";
  }

  if (auto policies = Chosen(inv, "policies", "PGCOURIER_POLICIES_FILE")) {
    policies_file_ = *policies;
  } else {
    policies_file_ = settings ? settings->policies_file : kDefaultPolicies;
  }

  // The password file the unit hands the daemon (LoadCredential=pgpass).
  if (settings && !Env("PGPASSFILE") && std::filesystem::exists(dir + "/pgpass")) {
    // Before any connection and any thread: the environment is the process's.
    setenv("PGPASSFILE", (dir + "/pgpass").c_str(), 0);  // NOLINT(concurrency-mt-unsafe): single-threaded here
  }
}

std::optional<signing::SecretBox> Context::MasterKey() const {
  if (master_key_file_.empty()) {
    std::cerr << "pgcourierctl: a master key is needed to seal the secret: --master-key-file FILE, "
                 "PGCOURIER_MASTER_KEY_FILE, or master.key beside the settings file (create one with "
                 "'pgcourierctl keygen --out FILE')\n";
    return std::nullopt;
  }
  try {
    return signing::SecretBox::FromKeyFile(master_key_file_);
  } catch (const std::exception& e) {
    std::cerr << "pgcourierctl: cannot use the master key " << master_key_file_ << ": " << e.what() << "\n";
    return std::nullopt;
  }
}

const config::PolicySet* Context::Policies() const {
  if (!policies_loaded_) {
    policies_loaded_ = true;
    if (policies_file_.empty()) {
      Warn("no policies file (--policies ''): URLs are checked for syntax only; the daemon applies the policy's "
           "endpoint rules before every request");
    } else {
      try {
        policies_.emplace(config::LoadPoliciesFile(policies_file_));
      } catch (const std::exception& e) {
        Warn(std::string("the policies file is not at hand, so URLs are checked for syntax only and policy names "
                         "not at all (the daemon checks both before every request): ") +
             e.what());
      }
    }
  }
  return policies_ ? &*policies_ : nullptr;
}

bool Context::CheckPolicy(const std::string& policy) const {
  const config::PolicySet* policies = Policies();
  if (!policies || policies->Find(policy)) return true;
  std::string names;
  for (const auto& [name, unused] : policies->all()) names += (names.empty() ? "" : ", ") + name;
  Fail("policy '" + policy + "' is not in " + policies_file_ + " (it has " + names +
       "); deliveries and runs that name it would be held until it is added");
  return false;
}

std::optional<validate::EndpointUrl> Context::CheckUrl(const std::string& option, const std::string& text,
                                                       const std::string& policy, int& exit_code) const {
  const std::string flag = "--" + option;
  auto checked = validate::ParseEndpointUrl(text);
  if (!checked.url) {
    std::cerr << "pgcourierctl: " << flag << " takes an absolute http:// or https:// URL: " << checked.problem.message
              << "\n";
    if (!checked.problem.hint.empty()) std::cerr << "hint: " << checked.problem.hint << "\n";
    exit_code = 2;
    return std::nullopt;
  }
  if (!checked.url->rewritten.empty()) Note(flag + ": " + checked.url->rewritten + ": " + checked.url->url);
  const config::PolicySet* policies = Policies();
  if (!policies) {
    // An address no policy allows unless it lists it, as a warning.
    netguard::EndpointRules no_allow_list;
    no_allow_list.require_https = false;
    if (auto refused = validate::CheckDestination(*checked.url, no_allow_list)) {
      Warn(flag + ": " + *refused + "; the daemon refuses it unless policy '" + policy +
           "' allows it (endpoint.allow_cidrs, allow_hosts)");
    }
    return std::move(checked.url);
  }
  const model::Policy* p = policies->Find(policy);
  if (!p) {
    CheckPolicy(policy);
    exit_code = 1;
    return std::nullopt;
  }
  if (auto refused = validate::CheckDestination(*checked.url, netguard::CompileEndpointRules(p->endpoint))) {
    Fail(flag + ": the endpoint rules of policy '" + policy + "' (" + policies_file_ + ") refuse it: " + *refused +
         "; the daemon would fail every delivery with blocked_destination");
    exit_code = 1;
    return std::nullopt;
  }
  return std::move(checked.url);
}

}  // namespace pgcourier::ctl

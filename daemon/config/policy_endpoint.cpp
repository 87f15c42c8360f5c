#include "config/policy_endpoint.hpp"

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/file.hpp"
#include "netguard/address_policy.hpp"
#include "netguard/egress.hpp"

namespace pgcourier::config::detail {
namespace {

// A list of strings, each checked by `check` (returns an error message or "").
std::optional<std::vector<std::string>> ReadStringList(const Entry& entry, std::string_view example,
                                                       std::string (*check)(const std::string&), Reporter& reporter) {
  if (!entry.value.IsSequence()) {
    reporter.Add(entry.Where(), entry.path,
                 "expected a list (like " + std::string(example) + "), got " + Describe(entry.value));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  std::size_t index = 0;
  for (const YAML::Node& item : entry.value) {
    const std::string path = entry.path + "[" + std::to_string(index++) + "]";
    const YAML::Mark where = item.Mark().is_null() ? entry.Where() : item.Mark();
    if (!item.IsScalar()) {
      reporter.Add(where, path, "expected a string, got " + Describe(item));
      ok = false;
      continue;
    }
    if (const std::string problem = check(item.Scalar()); !problem.empty()) {
      reporter.Add(where, path, problem);
      ok = false;
      continue;
    }
    out.push_back(item.Scalar());
  }
  if (!ok) return std::nullopt;
  return out;
}

std::string CheckCidr(const std::string& text) {
  if (netguard::ParseCidr(text)) return {};
  return "expected an address block like 127.0.0.0/8, 10.0.0.0/8 or ::1/128 (host bits zero), got " + Quote(text);
}

std::string CheckHostPattern(const std::string& text) {
  const std::string_view name = text.rfind("*.", 0) == 0 ? std::string_view(text).substr(2) : std::string_view(text);
  const bool ok = !name.empty() && name.size() <= 253 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_';
  });
  return ok ? std::string() : "expected a host name or a pattern like *.svc.internal, got " + Quote(text);
}

std::string CheckAllowOnlyEntry(const std::string& text) {
  if (const auto problem = netguard::AllowOnlyEntryProblem(text)) return *problem + ", got " + Quote(text);
  return {};
}

// An unquoted or quoted scalar without control characters, or nothing (reported).
std::optional<std::string> ReadText(const Entry& entry, std::string_view expected, Reporter& reporter) {
  if (entry.value.IsScalar() && !entry.value.Scalar().empty() && !detail::HasControlCharacters(entry.value.Scalar())) {
    return entry.value.Scalar();
  }
  reporter.Add(entry.Where(), entry.path, "expected " + std::string(expected) + ", got " + Describe(entry.value));
  return std::nullopt;
}

// "user:password" (one line, the user without ':'), from a file or an
// environment variable. Messages name the source, never its content.
bool SplitCredentials(std::string text, model::Policy::Endpoint& endpoint, std::string& problem) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const std::size_t colon = text.find(':');
  const bool one_line = !detail::HasControlCharacters(text);
  if (colon == std::string::npos || colon == 0 || !one_line) {
    base::Wipe(text);
    problem = "expected one line \"user:password\" (a user name without ':', then ':' and the password)";
    return false;
  }
  endpoint.proxy_user = text.substr(0, colon);
  endpoint.proxy_password = text.substr(colon + 1);
  base::Wipe(text);
  return true;
}

bool IsEnvironmentName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void ReadProxyCredentialsFile(const Entry& entry, model::Policy::Endpoint& endpoint, Reporter& reporter) {
  const auto path = ReadText(entry, "the path of a file holding \"user:password\"", reporter);
  if (!path) return;
  std::string content;
  try {
    content = base::ReadSmallFile(*path, base::ReadOptions{4096, false, true});
  } catch (const base::FileError& e) {
    reporter.Add(entry.Where(), entry.path, std::string("cannot read the proxy credentials: ") + e.what());
    return;
  }
  std::string problem;
  if (!SplitCredentials(std::move(content), endpoint, problem)) {
    reporter.Add(entry.Where(), entry.path, Printable(*path) + ": " + problem);
  }
}

void ReadProxyCredentialsEnv(const Entry& entry, model::Policy::Endpoint& endpoint, Reporter& reporter) {
  const auto name = ReadText(entry, "the name of an environment variable holding \"user:password\"", reporter);
  if (!name) return;
  if (!IsEnvironmentName(*name)) {
    reporter.Add(entry.Where(), entry.path,
                 "expected an environment variable name (letters, digits and '_'), got " + Quote(*name));
    return;
  }
  const char* value = std::getenv(name->c_str());
  if (value == nullptr || *value == '\0') {
    reporter.Add(entry.Where(), entry.path, "the environment variable " + *name + " is not set or empty");
    return;
  }
  std::string problem;
  if (!SplitCredentials(value, endpoint, problem)) {
    reporter.Add(entry.Where(), entry.path, "the environment variable " + *name + ": " + problem);
  }
}

}  // namespace

void ParseEndpoint(const Entry& section, model::Policy& policy, Reporter& reporter) {
  if (!IsMappingOrEmpty(section, "endpoint rules", reporter) || section.value.IsNull()) return;
  const std::vector<Entry> entries = Entries(section.value, section.path, reporter);
  const Entry* proxy_entry = nullptr;
  const Entry* credentials_file = nullptr;
  const Entry* credentials_env = nullptr;
  for (const Entry& entry : entries) {
    if (entry.key == "require_https") {
      if (const auto value = ReadBool(entry, reporter)) policy.endpoint.require_https = *value;
    } else if (entry.key == "allow_cidrs") {
      if (auto value = ReadStringList(entry, "[127.0.0.0/8, \"::1/128\"]", CheckCidr, reporter)) {
        policy.endpoint.allow_cidrs = std::move(*value);
      }
    } else if (entry.key == "allow_hosts") {
      if (auto value = ReadStringList(entry, "[localhost, \"*.svc.internal\"]", CheckHostPattern, reporter)) {
        policy.endpoint.allow_hosts = std::move(*value);
      }
    } else if (entry.key == "allow_only_hosts") {
      if (entry.value.IsSequence() && entry.value.size() == 0) {
        reporter.Add(entry.Where(), entry.path,
                     "an empty list would refuse every destination; list the hosts to allow, or remove the key "
                     "to allow any host the other endpoint rules allow");
      } else if (auto value = ReadStringList(entry, "[api.vendor.example, \"*.hooks.partner.example\"]",
                                             CheckAllowOnlyEntry, reporter)) {
        policy.endpoint.allow_only_hosts = std::move(*value);
      }
    } else if (entry.key == "proxy") {
      proxy_entry = &entry;
      if (!entry.value.IsScalar() || entry.value.Scalar().empty()) {
        reporter.Add(entry.Where(), entry.path,
                     "expected a proxy URL like http://egress.internal:3128, got " + Describe(entry.value));
        continue;
      }
      std::string problem;
      if (auto proxy = netguard::ParseProxyUrl(entry.value.Scalar(), problem)) {
        policy.endpoint.proxy = proxy->url;
      } else {
        // The value is not quoted back: it may hold credentials.
        reporter.Add(entry.Where(), entry.path, problem);
      }
    } else if (entry.key == "proxy_credentials_file") {
      credentials_file = &entry;
      ReadProxyCredentialsFile(entry, policy.endpoint, reporter);
    } else if (entry.key == "proxy_credentials_env") {
      credentials_env = &entry;
      ReadProxyCredentialsEnv(entry, policy.endpoint, reporter);
    } else {
      ReportUnknownKey(entry,
                       "require_https, allow_cidrs, allow_hosts, allow_only_hosts, proxy, proxy_credentials_file, "
                       "proxy_credentials_env",
                       reporter);
    }
  }
  if (credentials_file != nullptr && credentials_env != nullptr) {
    reporter.Add(credentials_env->key_node.Mark(), credentials_env->path,
                 "cannot be combined with proxy_credentials_file; give the credentials one way");
  }
  for (const Entry* credentials : {credentials_file, credentials_env}) {
    if (credentials != nullptr && proxy_entry == nullptr) {
      reporter.Add(credentials->key_node.Mark(), credentials->path,
                   "needs endpoint.proxy (credentials for which proxy?)");
    }
  }
}

}  // namespace pgcourier::config::detail

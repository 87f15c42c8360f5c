#include "config/shard_map.hpp"

#include "config/yaml_support.hpp"

namespace pgcourier::config {

using detail::Entries;
using detail::Quote;
using detail::Reporter;

std::optional<std::string> ShardMap::ShardOf(const std::string& tenant) const {
  if (const auto it = tenants.find(tenant); it != tenants.end()) return it->second;
  if (!default_shard.empty()) return default_shard;
  return std::nullopt;
}

namespace {

// A scalar without control characters, else a report; nullopt then.
std::optional<std::string> ReadText(const detail::Entry& entry, Reporter& reporter) {
  if (!entry.value.IsScalar() || entry.value.Scalar().empty()) {
    reporter.Add(entry.Where(), entry.path, "expected a non-empty string, got " + detail::Describe(entry.value));
    return std::nullopt;
  }
  if (detail::HasControlCharacters(entry.value.Scalar())) {
    reporter.Add(entry.Where(), entry.path, "control characters are not allowed");
    return std::nullopt;
  }
  return entry.value.Scalar();
}

}  // namespace

ShardMap ParseShardMap(const std::string& yaml_text, const std::string& source) {
  Reporter reporter(source);
  ShardMap map;
  std::vector<std::pair<detail::Entry, std::string>> named;  // where a shard is named, and the name
  detail::ParseSingleDocument(yaml_text, reporter, [&](const YAML::Node& root) {
    if (!root.IsMap()) {
      reporter.Add(root.Mark(), "(top level)", "expected a mapping with shards, default and tenants, got " +
                                                   detail::Describe(root));
      return;
    }
    for (const auto& entry : Entries(root, "", reporter)) {
      if (entry.key == "shards" || entry.key == "tenants") {
        if (!entry.value.IsMap()) {
          reporter.Add(entry.Where(), entry.path, "expected a mapping, got " + detail::Describe(entry.value));
          continue;
        }
        for (const auto& item : Entries(entry.value, entry.path, reporter)) {
          const auto text = ReadText(item, reporter);
          if (!text) continue;
          if (entry.key == "shards") {
            map.shards[item.key] = *text;
          } else {
            if (detail::HasControlCharacters(item.key)) {
              reporter.Add(item.key_node.Mark(), item.path, "a tenant id cannot hold control characters");
              continue;
            }
            map.tenants[item.key] = *text;
            named.emplace_back(item, *text);
          }
        }
      } else if (entry.key == "default") {
        if (const auto text = ReadText(entry, reporter)) {
          map.default_shard = *text;
          named.emplace_back(entry, *text);
        }
      } else {
        detail::ReportUnknownKey(entry, "shards, default, tenants", reporter);
      }
    }
  });
  if (map.shards.empty()) reporter.Add("shards", "at least one shard (name: database URL) is needed");
  for (const auto& [entry, name] : named) {
    if (!map.shards.empty() && !map.shards.count(name)) {
      reporter.Add(entry.Where(), entry.path, "no shard named " + Quote(name) + " in shards");
    }
  }
  reporter.ThrowIfAny();
  return map;
}

ShardMap LoadShardMapFile(const std::string& path) {
  return ParseShardMap(detail::ReadConfigFile(path, "shard map"), path);
}

}  // namespace pgcourier::config

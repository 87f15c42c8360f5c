// pgcourierctl migrate, schema, keygen, version: setting an installation up.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <system_error>

#include "config/shard_map.hpp"
#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "retry/text.hpp"
#include "signing/secret_box.hpp"
#include "store/migrate.hpp"
#include "store/session.hpp"

namespace pgcourier::ctl {
namespace {

std::string Reason(int error) { return std::generic_category().message(error); }

int Migrate(const Invocation& inv) {
  const Context context(inv);
  const auto applied = store::Migrate(context.DatabaseUrl());
  if (applied.empty()) std::cout << "schema is up to date\n";
  for (const auto& m : applied) std::cout << "applied " << m << "\n";
  return 0;
}

int Schema(const Invocation& inv) {
  const Context context(inv);
  store::Session session(store::SessionOptions{context.DatabaseUrl(), {}});
  const auto status = session.CheckSchema();
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject()
        .Field("current_version", status.current_version)
        .Field("required_version", status.required_version)
        .Strings("missing", status.missing)
        .Field("up_to_date", status.missing.empty())
        .EndObject();
    json.Finish();
  } else {
    std::cout << "schema version " << status.current_version << " (this build needs " << status.required_version
              << ")\n";
    for (const auto& m : status.missing) std::cout << "missing " << m << "\n";
  }
  return status.missing.empty() ? 0 : 1;
}

// Writes a new key to a file that must not exist yet, readable by its owner
// only; creates the folder (0755) when it is missing. Every refusal says why.
int Keygen(const Invocation& inv) {
  const std::filesystem::path path = inv.Text("out");
  const auto dir = path.parent_path();
  std::error_code ec;
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Fail("cannot create the folder " + dir.string() + ": " + ec.message());
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                          std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                          std::filesystem::perms::others_exec,
                                 ec);
    Note("created the folder " + dir.string() + " (mode 0755)");
  }
  // O_EXCL: never overwrite a master key (secrets sealed with it would be lost), even in a race.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int error = errno;
    if (error == EEXIST) return Fail(path.string() + " already exists; not overwriting a master key");
    return Fail("cannot create " + path.string() + ": " + Reason(error) +
                (error == EACCES ? " (run it as the owner of the folder, e.g. with sudo)" : ""));
  }
  std::string text = signing::SecretBox::GenerateKeyText() + "\n";
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(path.c_str());
      return Fail("cannot write " + path.string() + ": " + Reason(error));
    }
    written += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_error = errno;
  if (::close(fd) != 0 || !synced) {
    ::unlink(path.c_str());
    return Fail("cannot write " + path.string() + ": " + Reason(synced ? errno : sync_error));
  }
  std::cout << "wrote a new master key to " << path.string() << " (mode 0600)\n";
  return 0;
}

int Version(const Invocation& inv) {
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Field("version", PGCOURIER_VERSION).EndObject();
    json.Finish();
    return 0;
  }
  std::cout << "pgcourierctl " << PGCOURIER_VERSION << "\n";
  return 0;
}

// The shard map as pgcourierctl reads it: shards (URLs redacted), the
// default, and the tenant of each entry. With --tenant, only that tenant's shard.
int ShardList(const Invocation& inv) {
  const auto file = ShardMapFile(inv);
  if (!file || file->empty()) return Fail("no shard map: --shard-map FILE or PGCOURIER_SHARD_MAP");
  const auto map = config::LoadShardMapFile(*file);
  if (inv.Has("tenant")) {
    const auto shard = map.ShardOf(inv.Text("tenant"));
    if (!shard) return Fail("tenant '" + inv.Text("tenant") + "' is in no shard of " + *file);
    if (inv.json()) {
      Json json(std::cout);
      json.BeginObject().Field("tenant", inv.Text("tenant")).Field("shard", *shard)
          .Field("url", retry::RedactUrls(map.shards.at(*shard))).EndObject();
      json.Finish();
    } else {
      std::cout << *shard << "\t" << retry::RedactUrls(map.shards.at(*shard)) << "\n";
    }
    return 0;
  }
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("shards").BeginArray();
    for (const auto& [name, url] : map.shards) {
      json.BeginObject().Field("name", name).Field("url", retry::RedactUrls(url)).Field("default", name == map.default_shard).EndObject();
    }
    json.EndArray().Key("tenants").BeginObject();
    for (const auto& [tenant, shard] : map.tenants) json.Field(tenant, shard);
    json.EndObject().EndObject();
    json.Finish();
    return 0;
  }
  for (const auto& [name, url] : map.shards) {
    std::cout << name << (name == map.default_shard ? " (default)" : "") << "\t" << retry::RedactUrls(url) << "\n";
    for (const auto& [tenant, shard] : map.tenants) {
      if (shard == name) std::cout << "  " << tenant << "\n";
    }
  }
  return 0;
}

}  // namespace

std::vector<Command> SetupCommands() {
  constexpr std::string_view kTopic = "Setup";
  return {
      {.topic = kTopic,
       .name = "migrate",
       .summary = "apply the SQL migrations this build ships (safe to run twice and concurrently)",
       .example = "pgcourierctl migrate",
       .run = Migrate},
      {.topic = kTopic,
       .name = "schema",
       .summary = "show applied and missing migrations (exit 1 while some are missing)",
       .example = "pgcourierctl schema --json",
       .json = true,
       .run = Schema},
      {.topic = kTopic,
       .name = "keygen",
       .summary = "write a new random master key (32 bytes as 44 base64 characters and a newline, mode 0600)",
       .description = "Never overwrites a file; creates a missing folder. Every daemon and pgcourierctl of one "
                      "database need the same key: the secrets sealed under one key open with no other.",
       .options = {{.name = "out", .value_name = "FILE", .help = "where to write it", .required = true}},
       .example = "pgcourierctl keygen --out /etc/pgcourier/master.key    # as root (sudo)",
       .run = Keygen},
      {.topic = kTopic,
       .name = "shard list",
       .summary = "the shard map: each shard (URL redacted) and its tenants; with --tenant, that tenant's shard",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT",
                    .help = "only the shard of this tenant"}},
       .example = "pgcourierctl shard list --shard-map /etc/pgcourier/shards.yaml --tenant acme",
       .json = true,
       .run = ShardList},
      {.topic = kTopic,
       .name = "version",
       .summary = "print the version (also --version)",
       .example = "pgcourierctl version",
       .json = true,
       .run = Version},
  };
}

}  // namespace pgcourier::ctl

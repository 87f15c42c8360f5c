// pgcourierctl: the operator CLI. Every database statement lives in store/;
// this file parses arguments and prints.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "signing/secret_box.hpp"
#include "signing/webhook_signature.hpp"
#include "store/admin.hpp"
#include "store/store.hpp"

namespace {

using namespace pgcourier;

constexpr const char* kUsage = R"(usage: pgcourierctl [--database-url URL] COMMAND ...

Commands:
  migrate                                   apply the SQL migrations this build ships
  schema                                    show applied and missing migrations
  keygen --out FILE                         write a new random master key (mode 0600)
  subscription create --tenant T --url U --events 'order.*,invoice.paid'
                      [--policy NAME] [--id sub_x] [--description TEXT]
                                            create a subscription; prints its signing secret once
  subscription list [--tenant T]
  subscription show ID
  publish --tenant T --type EVENT_TYPE [--payload JSON] [--idempotency-key K] [--trace-id ID]
  status [--recent N]                       deliveries by status, and the N most recent

The database is --database-url, else DATABASE_URL, else the libpq environment (PGHOST...).
The master key (for subscription create) is --master-key-file, else PGCOURIER_MASTER_KEY_FILE.
)";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;

  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  bool Has(const std::string& name) const { return options.count(name) > 0; }
};

std::optional<Args> Parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        args.options[a.substr(2, eq - 2)] = a.substr(eq + 1);
      } else if (a == "--help") {
        args.options["help"] = "";
      } else if (i + 1 < argc) {
        args.options[a.substr(2)] = argv[++i];
      } else {
        std::cerr << "pgcourierctl: " << a << " needs a value\n";
        return std::nullopt;
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

std::string DatabaseUrl(const Args& args) {
  if (args.Has("database-url")) return args.Get("database-url");
  if (const char* env = std::getenv("DATABASE_URL")) return env;
  return "";
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
  }
  return out;
}

int Require(const Args& args, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (!args.Has(n) || args.Get(n).empty()) {
      std::cerr << "pgcourierctl: --" << n << " is required\n";
      return 2;
    }
  }
  return 0;
}

void PrintSubscription(const store::SubscriptionInfo& s) {
  std::cout << s.id << "  tenant=" << s.tenant_id << "  " << (s.active ? "active" : "inactive")
            << "  policy=" << s.policy << "\n"
            << "  url:     " << s.url << "\n"
            << "  events:  " << s.event_types << "\n"
            << "  created: " << s.created_at << "\n";
  for (const auto& secret : s.secrets) {
    std::cout << "  secret:  whsec_..." << secret.last4 << " (created " << secret.created_at
              << (secret.expires_at.empty() ? "" : ", expires " + secret.expires_at) << ")\n";
  }
}

int CmdMigrate(const Args& args) {
  const auto applied = store::Migrate(DatabaseUrl(args));
  if (applied.empty()) std::cout << "schema is up to date\n";
  for (const auto& m : applied) std::cout << "applied " << m << "\n";
  return 0;
}

int CmdSchema(const Args& args) {
  store::Store s(DatabaseUrl(args));
  const auto status = s.CheckSchema();
  std::cout << "schema version " << status.current_version << " (this build needs " << status.required_version
            << ")\n";
  for (const auto& m : status.missing) std::cout << "missing " << m << "\n";
  return status.missing.empty() ? 0 : 1;
}

int CmdKeygen(const Args& args) {
  if (int rc = Require(args, {"out"})) return rc;
  const std::string path = args.Get("out");
  if (std::filesystem::exists(path)) {
    std::cerr << "pgcourierctl: " << path << " already exists; not overwriting a master key\n";
    return 1;
  }
  const mode_t old_mask = umask(077);
  std::ofstream out(path);
  umask(old_mask);
  out << signing::SecretBox::GenerateKeyText() << "\n";
  if (!out) {
    std::cerr << "pgcourierctl: cannot write " << path << "\n";
    return 1;
  }
  std::cout << "wrote a new master key to " << path << "\n";
  return 0;
}

std::string MasterKeyPath(const Args& args) {
  if (args.Has("master-key-file")) return args.Get("master-key-file");
  if (const char* env = std::getenv("PGCOURIER_MASTER_KEY_FILE")) return env;
  return "";
}

int CmdSubscription(const Args& args) {
  const std::string verb = args.positional.size() > 1 ? args.positional[1] : "";
  if (verb == "create") {
    if (int rc = Require(args, {"tenant", "url", "events"})) return rc;
    const std::string key_path = MasterKeyPath(args);
    if (key_path.empty()) {
      std::cerr << "pgcourierctl: a master key is needed to store the signing secret: "
                   "--master-key-file FILE or PGCOURIER_MASTER_KEY_FILE (create one with 'pgcourierctl keygen')\n";
      return 2;
    }
    const auto box = signing::SecretBox::FromKeyFile(key_path);
    store::NewSubscription sub;
    sub.id = args.Get("id");
    sub.tenant_id = args.Get("tenant");
    sub.url = args.Get("url");
    sub.event_types = SplitList(args.Get("events"));
    sub.policy = args.Get("policy", "default");
    sub.description = args.Get("description");
    const std::string secret = signing::GenerateWebhookSecret(32);
    store::AdminStore admin(DatabaseUrl(args));
    const std::string id = admin.CreateSubscription(sub, [&](const std::string& sub_id) {
      return std::make_pair(box.Seal(secret, sub_id), secret.substr(secret.size() - 4));
    });
    std::cout << "created subscription " << id << "\n"
              << "signing secret (shown once, store it with the receiver): " << secret << "\n";
    return 0;
  }
  if (verb == "list") {
    store::AdminStore admin(DatabaseUrl(args));
    const auto subs = admin.ListSubscriptions(args.Get("tenant"));
    if (subs.empty()) std::cout << "no subscriptions\n";
    for (const auto& s : subs) PrintSubscription(s);
    return 0;
  }
  if (verb == "show") {
    if (args.positional.size() < 3) {
      std::cerr << "pgcourierctl: subscription show needs an id\n";
      return 2;
    }
    store::AdminStore admin(DatabaseUrl(args));
    const auto s = admin.ShowSubscription(args.positional[2]);
    if (!s) {
      std::cerr << "pgcourierctl: no subscription " << args.positional[2] << "\n";
      return 1;
    }
    PrintSubscription(*s);
    for (const auto& [status, count] : s->deliveries_by_status) {
      std::cout << "  deliveries " << status << ": " << count << "\n";
    }
    return 0;
  }
  std::cerr << "pgcourierctl: subscription needs create, list or show\n" << kUsage;
  return 2;
}

int CmdPublish(const Args& args) {
  if (int rc = Require(args, {"tenant", "type"})) return rc;
  store::AdminStore admin(DatabaseUrl(args));
  std::cout << admin.Publish(args.Get("tenant"), args.Get("type"), args.Get("payload", "{}"),
                             args.Get("idempotency-key"), args.Get("trace-id"))
            << "\n";
  return 0;
}

int CmdStatus(const Args& args) {
  store::AdminStore admin(DatabaseUrl(args));
  const auto rows = admin.Status();
  std::printf("%-16s %12s %10s  %s\n", "status", "deliveries", "due now", "oldest due");
  for (const auto& r : rows) {
    std::printf("%-16s %12lld %10lld  %s\n", r.status.c_str(), r.deliveries, r.due_now, r.oldest_due_at.c_str());
  }
  if (rows.empty()) std::printf("(no deliveries)\n");
  const int recent = std::atoi(args.Get("recent", "0").c_str());
  if (recent > 0) {
    std::printf("\n%-34s %-18s %-16s %8s %5s  %s\n", "delivery", "event type", "status", "attempts", "http",
                "last error");
    for (const auto& d : admin.Recent(recent)) {
      std::printf("%-34s %-18s %-16s %8d %5s  %s\n", d.id.c_str(), d.event_type.c_str(), d.status.c_str(),
                  d.attempts, d.last_status_code.c_str(), d.last_error.c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = Parse(argc, argv);
  if (!args) return 2;
  if (args->positional.empty() || args->Has("help")) {
    std::cout << kUsage;
    return args->positional.empty() && !args->Has("help") ? 2 : 0;
  }
  const std::string& command = args->positional[0];
  try {
    if (command == "migrate") return CmdMigrate(*args);
    if (command == "schema") return CmdSchema(*args);
    if (command == "keygen") return CmdKeygen(*args);
    if (command == "subscription") return CmdSubscription(*args);
    if (command == "publish") return CmdPublish(*args);
    if (command == "status") return CmdStatus(*args);
    if (command == "version") {
      std::cout << "pgcourierctl " << PGCOURIER_VERSION << "\n";
      return 0;
    }
    std::cerr << "pgcourierctl: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "pgcourierctl " << command << ": " << e.what() << "\n";
    return 1;
  }
}

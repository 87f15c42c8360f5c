#include "ctl/args.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>
#include <sstream>

#include "validate/identifiers.hpp"

namespace pgcourier::ctl {
namespace {

constexpr std::size_t kHelpWidth = 100;
constexpr std::size_t kOptionColumn = 28;
constexpr std::string_view kExitCodes =
    "Exit codes: 0 done; 1 refused or failed (an unknown id, a value the policy or the database refuses, a\n"
    "database error); 2 the command line is wrong (nothing was done).\n";

const std::vector<Option> kGlobalOptions = {
    {"database-url", Kind::kText, "URL",
     "the database, a libpq URI (default: DATABASE_URL, else database_url of the settings file, else the libpq "
     "environment: PGHOST, PGUSER, ...)"},
    {"config", Kind::kText, "FILE",
     "pgcourierd's settings file, for its database_url, policies_file and master_key_file (default: "
     "PGCOURIER_CONFIG, else /etc/pgcourier/pgcourierd.yaml when it exists; '' reads none)"},
    {"policies", Kind::kText, "FILE",
     "the policies file URLs are checked against (default: PGCOURIER_POLICIES_FILE, else policies_file of the "
     "settings file, else /etc/pgcourier/policies.yaml; '' checks none)"},
    {"master-key-file", Kind::kText, "FILE",
     "the master key that seals secrets (default: PGCOURIER_MASTER_KEY_FILE, else master_key_file of the settings "
     "file, else master.key beside it)"},
    {"shard-map", Kind::kText, "FILE",
     "tenants spread over several databases: the shard map (default: PGCOURIER_SHARD_MAP); the database is then "
     "the shard of --tenant, or the one named by --shard (README: Tenant shards)"},
    {"shard", Kind::kText, "NAME", "with a shard map: the shard to use, for commands without --tenant"},
};

const Option kJsonOption = {"json", Kind::kFlag, "", "print JSON instead of text (README: JSON output)"};

bool StartsWith(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

std::string Join(const std::vector<std::string_view>& items, std::string_view last_sep = " or ") {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    out.append(i == 0 ? "" : i + 1 == items.size() ? last_sep : ", ").append(items[i]);
  }
  return out;
}

// Word-wraps `text` to kHelpWidth, the first line starting at `first_column`
// (already printed), the others indented by `indent`.
std::string Wrap(std::string_view text, std::size_t first_column, std::size_t indent) {
  std::string out;
  std::size_t column = first_column;
  std::istringstream words{std::string(text)};
  std::string word;
  bool first = true;
  while (words >> word) {
    if (!first && column + 1 + word.size() > kHelpWidth) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    } else if (!first) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    first = false;
  }
  return out;
}

std::string OptionLine(const Option& o) {
  std::string left = "  --" + std::string(o.name);
  if (o.kind != Kind::kFlag) left += " " + std::string(o.value_name.empty() ? "VALUE" : o.value_name);
  std::string help(o.help);
  if (!o.choices.empty()) help += " (" + Join(o.choices) + ")";
  if (o.clearable) help += "; '' or none clears it";
  if (!o.default_value.empty()) help += " (default: " + std::string(o.default_value) + ")";
  if (o.required) help += " (required)";
  if (left.size() + 2 > kOptionColumn) return left + "\n" + std::string(kOptionColumn, ' ') +
                                               Wrap(help, kOptionColumn, kOptionColumn) + "\n";
  return left + std::string(kOptionColumn - left.size(), ' ') + Wrap(help, kOptionColumn, kOptionColumn) + "\n";
}

std::string GlobalOptionLines() {
  std::string out;
  for (const auto& o : kGlobalOptions) out += OptionLine(o);
  out += "  -h, --help" + std::string(kOptionColumn - 12, ' ') + "this help\n";
  return out;
}

// The first word of two-word commands ("subscription").
std::vector<std::string> Groups(const std::vector<Command>& commands) {
  std::vector<std::string> out;
  for (const auto& c : commands) {
    const auto space = c.name.find(' ');
    if (space == std::string_view::npos) continue;
    std::string group(c.name.substr(0, space));
    if (std::find(out.begin(), out.end(), group) == out.end()) out.push_back(std::move(group));
  }
  return out;
}

std::vector<std::string> SubcommandsOf(const std::vector<Command>& commands, std::string_view group) {
  std::vector<std::string> out;
  for (const auto& c : commands) {
    if (c.name.size() > group.size() && StartsWith(c.name, group) && c.name[group.size()] == ' ') {
      out.emplace_back(c.name.substr(group.size() + 1));
    }
  }
  return out;
}

const Command* FindCommand(const std::vector<Command>& commands, std::string_view name) {
  const auto it = std::find_if(commands.begin(), commands.end(), [&](const Command& c) { return c.name == name; });
  return it == commands.end() ? nullptr : &*it;
}

std::string Suggest(std::string_view word, const std::vector<std::string>& candidates, std::string_view prefix = "",
                    std::string_view quote = "") {
  const auto best = Closest(word, candidates);
  return best ? "; did you mean " + std::string(quote) + std::string(prefix) + *best + std::string(quote) + "?" : "";
}

std::string SeeHelp(std::string_view what) {
  return "\n(see 'pgcourierctl " + std::string(what) + (what.empty() ? "" : " ") + "--help')";
}

std::optional<long long> WholeNumber(std::string_view text) {
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> RealNumber(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

bool IsClear(const Option& o, std::string_view value) { return o.clearable && (value.empty() || value == "none"); }

// What is wrong with `value` for option `o`, or "".
std::string TypeProblem(const Option& o, const std::string& value) {
  if (IsClear(o, value)) return "";
  const std::string flag = "--" + std::string(o.name);
  const auto takes = [&](const std::string& generated) {
    return flag + " takes " + (o.expect.empty() ? generated : std::string(o.expect));
  };
  switch (o.kind) {
    case Kind::kText:
    case Kind::kFlag:
    case Kind::kUrl:
      return "";
    case Kind::kInt: {
      const auto n = WholeNumber(value);
      if (n && *n >= o.min && *n <= o.max) return "";
      return takes("a whole number from " + std::to_string(o.min) + " to " + std::to_string(o.max));
    }
    case Kind::kNumber: {
      const auto n = RealNumber(value);
      if (n && *n > 0 && *n <= static_cast<double>(o.max)) return "";
      return takes("a number above 0 and at most " + std::to_string(o.max));
    }
    case Kind::kDuration:
      return ParseDuration(value) ? "" : takes("a duration such as 30s, 15m, 24h or 7d");
    case Kind::kChoice:
      if (std::find(o.choices.begin(), o.choices.end(), value) != o.choices.end()) return "";
      return takes(Join(o.choices) + ", not '" + value + "'");
    case Kind::kChoices: {
      const auto items = SplitList(value);
      if (items.empty()) return flag + " needs at least one of " + Join(o.choices);
      for (const auto& item : items) {
        if (std::find(o.choices.begin(), o.choices.end(), item) == o.choices.end()) {
          return takes(Join(o.choices) + ", not '" + item + "'");
        }
      }
      return "";
    }
    case Kind::kList:
      return SplitList(value).empty() ? flag + " needs at least one item" : "";
    case Kind::kIdentifier: {
      const auto problem = validate::IdentifierProblem(value);
      return problem ? flag + ": " + *problem : "";
    }
    case Kind::kJsonObject: {
      const auto brace = value.find_first_not_of(" \t\r\n");
      return brace != std::string::npos && value[brace] == '{' ? "" : takes("a JSON object");
    }
  }
  return "";
}

ParseResult Usage(std::string message) {
  ParseResult out;
  out.action = ParseResult::Action::kUsageError;
  out.text = std::move(message);
  return out;
}

ParseResult Print(std::string text) {
  ParseResult out;
  out.action = ParseResult::Action::kPrint;
  out.text = std::move(text);
  return out;
}

struct Given {
  std::string name;
  std::optional<std::string> value;  // nullopt: a flag, or an unknown option without '='
};

}  // namespace

const std::vector<Option>& GlobalOptions() { return kGlobalOptions; }

const Option* Invocation::Find(std::string_view name) const {
  for (const auto& o : command_->options) {
    if (o.name == name) return &o;
  }
  for (const auto& o : kGlobalOptions) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

std::string Invocation::Text(std::string_view name) const {
  if (const auto it = values_.find(name); it != values_.end()) return it->second;
  const Option* o = Find(name);
  return o ? std::string(o->default_value) : std::string();
}

bool Invocation::Cleared(std::string_view name) const {
  const Option* o = Find(name);
  return o && Has(name) && IsClear(*o, Text(name));
}

std::optional<long long> Invocation::Int(std::string_view name) const {
  if (Cleared(name)) return std::nullopt;
  return WholeNumber(Text(name));
}

std::optional<double> Invocation::Number(std::string_view name) const {
  if (Cleared(name)) return std::nullopt;
  return RealNumber(Text(name));
}

std::optional<std::chrono::seconds> Invocation::Duration(std::string_view name) const {
  return ParseDuration(Text(name));
}

std::vector<std::string> Invocation::List(std::string_view name) const { return SplitList(Text(name)); }

std::optional<std::chrono::seconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  long long unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return std::nullopt;
  }
  const auto count = WholeNumber(text.substr(0, text.size() - 1));
  constexpr long long kMaxSeconds = 100LL * 366 * 86400;
  if (!count || *count < 0 || *count > kMaxSeconds / unit) return std::nullopt;
  return std::chrono::seconds(*count * unit);
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    const auto first = item.find_first_not_of(" \t");
    if (first != std::string_view::npos) {
      const auto last = item.find_last_not_of(" \t");
      out.emplace_back(item.substr(first, last - first + 1));
    }
    start = comma + 1;
  }
  return out;
}

std::optional<std::string> Closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = std::max<std::size_t>(1, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    // Optimal string alignment distance: insertions, deletions, substitutions, adjacent transpositions.
    const std::size_t n = word.size();
    const std::size_t m = candidate.size();
    std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
    for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= n; ++i) {
      for (std::size_t j = 1; j <= m; ++j) {
        const std::size_t cost = word[i - 1] == candidate[j - 1] ? 0 : 1;
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
        if (i > 1 && j > 1 && word[i - 1] == candidate[j - 2] && word[i - 2] == candidate[j - 1]) {
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
      }
    }
    if (d[n][m] < best_distance) {
      best_distance = d[n][m];
      best = candidate;
    }
  }
  return best;
}

std::string CommandHelp(const Command& c) {
  std::string usage = "usage: pgcourierctl " + std::string(c.name);
  if (!c.operand.empty()) usage += " " + std::string(c.operand);
  bool optional = false;
  for (const auto& o : c.options) {
    if (o.required) {
      usage += " --" + std::string(o.name) + " " + std::string(o.value_name);
    } else {
      optional = true;
    }
  }
  if (optional || c.json) usage += " [options]";
  std::string summary(c.summary);
  if (!summary.empty()) summary[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(summary[0])));
  std::string out = usage + "\n\n" + Wrap(summary + ".", 0, 0) + "\n";
  if (!c.description.empty()) {
    std::istringstream paragraphs{std::string(c.description)};
    std::string line;
    out += "\n";
    while (std::getline(paragraphs, line)) out += (line.empty() ? "" : Wrap(line, 0, 0)) + "\n";
  }
  if (!c.options.empty() || c.json) {
    out += "\nOptions:\n";
    for (const auto& o : c.options) out += OptionLine(o);
    if (c.json) out += OptionLine(kJsonOption);
  }
  out += "\nAnd the global options --database-url, --config, --policies, --master-key-file, --shard-map, --shard "
         "('pgcourierctl --help').\n";
  if (!c.example.empty()) {
    out += "\nExample:\n";
    std::istringstream lines{std::string(c.example)};
    std::string line;
    while (std::getline(lines, line)) out += "  " + line + "\n";
  }
  return out + "\n" + std::string(kExitCodes);
}

std::string GroupHelp(const std::vector<Command>& commands, std::string_view group) {
  std::string out = "usage: pgcourierctl " + std::string(group) + " COMMAND [OPERAND] [OPTIONS]\n\nCommands:\n";
  std::size_t width = 0;
  for (const auto& sub : SubcommandsOf(commands, group)) width = std::max(width, sub.size());
  for (const auto& sub : SubcommandsOf(commands, group)) {
    const Command* c = FindCommand(commands, std::string(group) + " " + sub);
    const std::string left = "  " + sub + std::string(width - sub.size() + 2, ' ');
    out += left + Wrap(c->summary, left.size(), left.size()) + "\n";
  }
  return out + "\n'pgcourierctl " + std::string(group) + " COMMAND --help' shows the options of one.\n\n" +
         std::string(kExitCodes);
}

std::string GlobalHelp(const std::vector<Command>& commands) {
  std::string out =
      "usage: pgcourierctl [GLOBAL OPTIONS] COMMAND [OPERAND] [OPTIONS]\n\n"
      "The operator's tool for pgcourier: subscriptions, deliveries, integration runs, status and setup.\n";
  std::size_t width = 0;
  for (const auto& c : commands) width = std::max(width, c.name.size() + (c.operand.empty() ? 0 : c.operand.size() + 1));
  std::string_view topic;
  for (const auto& c : commands) {
    if (c.topic != topic) {
      topic = c.topic;
      out += "\n" + std::string(topic) + ":\n";
    }
    std::string left = "  " + std::string(c.name) + (c.operand.empty() ? "" : " " + std::string(c.operand));
    left += std::string(width + 4 - left.size(), ' ');
    out += left + Wrap(c.summary, left.size(), left.size()) + "\n";
  }
  out += "\nGlobal options:\n" + GlobalOptionLines();
  out += "  --version" + std::string(kOptionColumn - 11, ' ') + "print the version\n";
  out +=
      "\n'pgcourierctl COMMAND --help' (or 'pgcourierctl help COMMAND') shows a command's options, defaults and an\n"
      "example. Read commands take --json. TS is PostgreSQL timestamptz input, e.g. 2026-11-22T05:00:00Z.\n\n";
  return out + std::string(kExitCodes);
}

ParseResult Parse(const std::vector<Command>& commands, const std::vector<std::string>& args,
                  std::string_view version) {
  // Which names are flags and which take a value, over every command: a name
  // is the same kind everywhere, so a command line splits into options and
  // positionals before the command is known.
  std::set<std::string, std::less<>> flags = {"json"};
  std::set<std::string, std::less<>> valued;
  for (const auto& o : kGlobalOptions) valued.emplace(o.name);
  for (const auto& c : commands) {
    for (const auto& o : c.options) (o.kind == Kind::kFlag ? flags : valued).emplace(o.name);
  }

  std::vector<std::string> positionals;
  std::vector<Given> given;
  std::string token_problem;
  bool help = false;
  bool show_version = false;
  bool options_ended = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_ended || a.empty() || a[0] != '-' || a == "-") {
      positionals.push_back(a);
    } else if (a == "--") {
      options_ended = true;
    } else if (a == "-h") {
      help = true;
    } else if (StartsWith(a, "--")) {
      const auto eq = a.find('=');
      std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      std::optional<std::string> value;
      if (eq != std::string::npos) value = a.substr(eq + 1);
      if (name == "help" || name == "version" || flags.count(name) > 0) {
        if (value && token_problem.empty()) token_problem = "--" + name + " takes no value";
        if (name == "help") {
          help = true;
        } else if (name == "version") {
          show_version = true;
        } else {
          given.push_back({name, std::nullopt});
        }
      } else if (value || valued.count(name) == 0) {
        given.push_back({name, value});
      } else if (i + 1 < args.size()) {
        given.push_back({name, args[++i]});
      } else if (token_problem.empty()) {
        token_problem = a + " needs a value";
        given.push_back({name, std::string()});
      }
    } else if (token_problem.empty()) {
      token_problem = "unknown option '" + a + "' (options are --name; -h is help)";
    }
  }

  if (show_version) return Print("pgcourierctl " + std::string(version) + "\n");

  // The command: "help [WORDS...]", a group and a word, or one word.
  bool help_command = false;
  if (!positionals.empty() && positionals[0] == "help") {
    help_command = true;
    positionals.erase(positionals.begin());
  }
  if (positionals.empty()) {
    if (help || help_command) return Print(GlobalHelp(commands));
    if (!token_problem.empty()) return Usage(token_problem + SeeHelp(""));
    return Usage(GlobalHelp(commands));
  }
  const auto groups = Groups(commands);
  std::vector<std::string> top(groups);
  for (const auto& c : commands) {
    if (c.name.find(' ') == std::string_view::npos) top.emplace_back(c.name);
  }
  const std::string& first = positionals[0];
  const Command* command = nullptr;
  std::size_t words = 1;
  if (std::find(groups.begin(), groups.end(), first) != groups.end()) {
    const auto subs = SubcommandsOf(commands, first);
    if (positionals.size() < 2) {
      if (help || help_command) return Print(GroupHelp(commands, first));
      std::vector<std::string_view> names(subs.begin(), subs.end());
      return Usage(first + " needs " + Join(names) + SeeHelp(first));
    }
    command = FindCommand(commands, first + " " + positionals[1]);
    if (!command) {
      return Usage(first + " has no command '" + positionals[1] + "'" + Suggest(positionals[1], subs, "", "'") +
                   SeeHelp(first));
    }
    words = 2;
  } else {
    command = FindCommand(commands, first);
    if (!command) return Usage("unknown command '" + first + "'" + Suggest(first, top, "", "'") + SeeHelp(""));
  }
  if (help || help_command) return Print(CommandHelp(*command));
  if (!token_problem.empty()) return Usage(token_problem);

  const std::string name(command->name);
  std::map<std::string, std::string, std::less<>> values;
  for (const auto& g : given) {
    const bool global = std::any_of(kGlobalOptions.begin(), kGlobalOptions.end(),
                                    [&](const Option& o) { return o.name == g.name; });
    const bool own = std::any_of(command->options.begin(), command->options.end(),
                                 [&](const Option& o) { return o.name == g.name; });
    if (g.name == "json" && !command->json) return Usage(name + " does not take --json (it is not a read command)");
    if (!global && !own && g.name != "json") {
      std::vector<std::string> known;
      for (const auto& o : command->options) known.emplace_back(o.name);
      for (const auto& o : kGlobalOptions) known.emplace_back(o.name);
      if (command->json) known.emplace_back("json");
      return Usage(name + " does not take --" + g.name + Suggest(g.name, known, "--") + SeeHelp(name));
    }
    if (values.count(g.name) > 0) return Usage("--" + g.name + " is given twice");
    values[g.name] = g.value.value_or("");
  }

  const std::size_t wanted = command->operand.empty() ? 0 : 1;
  if (positionals.size() - words < wanted) return Usage(name + " needs " + std::string(command->operand));
  if (positionals.size() - words > wanted) {
    return Usage(name + ": unexpected argument '" + positionals[words + wanted] + "'");
  }
  for (const auto& o : command->options) {
    const auto it = values.find(o.name);
    if (o.required && (it == values.end() || it->second.empty())) return Usage("--" + std::string(o.name) + " is required");
    if (it == values.end()) continue;
    if (std::string problem = TypeProblem(o, it->second); !problem.empty()) return Usage(problem);
  }
  ParseResult out;
  out.action = ParseResult::Action::kRun;
  out.invocation.emplace(*command, wanted ? positionals[words] : std::string(), std::move(values));
  return out;
}

}  // namespace pgcourier::ctl

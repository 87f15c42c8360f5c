// pgcourierctl's command line: one table per command (name, summary, options
// with their type, default and help, an example), and the parser and the help
// generated from the same tables, so that what the help says is what the
// parser accepts.
//
//   pgcourierctl [GLOBAL OPTIONS] COMMAND [OPERAND] [OPTIONS]
//
// A command is one word (status) or a group and a word (subscription create).
// Options may come anywhere, as --name VALUE or --name=VALUE; flags take no
// value; "--" ends the options. Values are checked against their type before
// a command runs (numbers and their range, durations, choices, tenant ids),
// so a command sees only well-formed input; rules that need more context
// (URLs against a policy, combinations of options) are the command's.
//
// Exit codes, for every command: 0 done; 1 refused or failed (an unknown id,
// a value the configuration or the database refuses, a database error);
// 2 the command line is wrong (nothing was done). Help goes to stdout with
// exit 0; usage errors go to stderr.
//
// Plain values; no global state. Not thread-safe (nothing here is shared).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcourier::ctl {

enum class Kind {
  kText,       // any text
  kFlag,       // no value
  kInt,        // a whole number from min to max
  kNumber,     // a number above 0, at most max
  kDuration,   // 30s, 15m, 24h, 7d
  kChoice,     // one of choices
  kChoices,    // a comma-separated list of choices
  kList,       // a comma-separated list (items trimmed, empty ones dropped)
  kIdentifier, // the tenant/id grammar of validate/identifiers.hpp
  kUrl,        // an absolute http(s) URL: checked by the command (it needs the policy)
  kJsonObject, // a JSON object ({...})
};

struct Option {
  std::string_view name;        // "tenant" for --tenant
  Kind kind = Kind::kText;
  std::string_view value_name;  // "TENANT" in --tenant TENANT; empty for flags
  std::string_view help;
  std::string_view default_value;  // what Text() returns when absent, shown in the help; empty: none
  bool required = false;
  long long min = 0;  // kInt
  long long max = 0;  // kInt, kNumber
  std::vector<std::string_view> choices;  // kChoice, kChoices
  std::string_view expect;  // overrides the generated "takes ..." of a type error
  // Also accepts "" and "none", which mean "clear it" (subscription update).
  bool clearable = false;
};

class Invocation;
using RunFunction = int (*)(const Invocation&);

struct Command {
  std::string_view topic;    // heading in the global help ("Subscriptions")
  std::string_view name;     // "status", "subscription create"
  std::string_view operand;  // the one positional argument it needs ("ID"); empty: none
  std::string_view summary;  // one line, for the global help
  std::string_view description;  // more, for the command's help; may be empty
  std::vector<Option> options;
  std::string_view example;  // one or more lines
  bool json = false;         // takes --json (every read command)
  RunFunction run = nullptr;
};

// Options every command takes (and their help).
const std::vector<Option>& GlobalOptions();

// A parsed, type-checked command line.
class Invocation {
 public:
  Invocation(const Command& command, std::string operand, std::map<std::string, std::string, std::less<>> values)
      : command_(&command), operand_(std::move(operand)), values_(std::move(values)) {}

  const Command& command() const { return *command_; }
  const std::string& operand() const { return operand_; }
  // True when --name was given (not merely defaulted).
  bool Has(std::string_view name) const { return values_.count(name) > 0; }
  // The value given, else the option's default, else "".
  std::string Text(std::string_view name) const;
  bool Flag(std::string_view name) const { return Has(name); }
  // Typed values of options that were given (checked when parsing), or of their default.
  std::optional<long long> Int(std::string_view name) const;
  std::optional<double> Number(std::string_view name) const;
  std::optional<std::chrono::seconds> Duration(std::string_view name) const;
  std::vector<std::string> List(std::string_view name) const;
  // True when a clearable option was given as "" or "none".
  bool Cleared(std::string_view name) const;
  bool json() const { return Has("json"); }

 private:
  const Option* Find(std::string_view name) const;

  const Command* command_;
  std::string operand_;
  std::map<std::string, std::string, std::less<>> values_;
};

struct ParseResult {
  enum class Action { kRun, kPrint, kUsageError };
  Action action = Action::kUsageError;
  std::string text;  // kPrint: the help or version to print (stdout); kUsageError: the message (stderr)
  std::optional<Invocation> invocation;  // kRun
};

// Parses argv against `commands`. Help (help, -h, --help at every level) and
// --version are answered here.
ParseResult Parse(const std::vector<Command>& commands, const std::vector<std::string>& args,
                  std::string_view version);

// The help texts, generated from the tables.
std::string GlobalHelp(const std::vector<Command>& commands);
std::string GroupHelp(const std::vector<Command>& commands, std::string_view group);
std::string CommandHelp(const Command& command);

// The candidate closest to `word` when it is close enough to be a typo
// (edit distance, transpositions counted once), else nullopt.
std::optional<std::string> Closest(std::string_view word, const std::vector<std::string>& candidates);

// Helpers for the commands' own checks.
std::optional<std::chrono::seconds> ParseDuration(std::string_view text);
std::vector<std::string> SplitList(std::string_view text);

}  // namespace pgcourier::ctl

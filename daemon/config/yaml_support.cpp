#include "config/yaml_support.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

#include "base/file.hpp"
#include "config/duration.hpp"
#include "config/policies.hpp"

namespace pgcourier::config::detail {

using model::Millis;

namespace {

bool IsControlCharacter(unsigned char c) { return c < 0x20 || c == 0x7f; }

}  // namespace

bool HasControlCharacters(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return IsControlCharacter(static_cast<unsigned char>(c)); });
}

std::string Printable(std::string_view text) {
  constexpr std::size_t kMaxChars = 60;
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == kMaxChars) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (IsControlCharacter(c)) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Quote(std::string_view text) { return "'" + Printable(text) + "'"; }

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return Quote(node.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

bool IsQuoted(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "!"; }

// ---------------------------------------------------------------------------
// Reporter

void Reporter::Add(const YAML::Mark& mark, std::string_view path, std::string_view message) {
  const int line_number = mark.is_null() || mark.line < 0 ? 0 : mark.line + 1;
  std::string line = source_;
  if (line_number > 0) line += ":" + std::to_string(line_number);
  line += ": ";
  if (!path.empty()) {
    line += path;
    line += ": ";
  }
  line += message;
  problems_.emplace_back(line_number, std::move(line));
}

void Reporter::ThrowIfAny() {
  if (problems_.empty()) return;
  std::stable_sort(problems_.begin(), problems_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> lines;
  lines.reserve(problems_.size());
  for (auto& problem : problems_) lines.push_back(std::move(problem.second));
  problems_.clear();
  throw ConfigError(std::move(lines));
}

// ---------------------------------------------------------------------------
// Mappings

std::string ChildPath(const std::string& parent, std::string_view key) {
  std::string printable = Printable(key);
  return parent.empty() ? printable : parent + "." + printable;
}

YAML::Mark Entry::Where() const {
  const YAML::Mark mark = value.Mark();
  if (!value.IsDefined() || value.IsNull() || mark.is_null()) return key_node.Mark();
  return mark;
}

std::vector<Entry> Entries(const YAML::Node& map, const std::string& path, Reporter& reporter) {
  std::vector<Entry> out;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      reporter.Add(key.Mark(), path.empty() ? "(top level)" : path,
                   "keys must be plain strings, got " + Describe(key) + " as a key");
      continue;
    }
    std::string name = key.Scalar();
    std::string child = ChildPath(path, name);
    if (!seen.insert(name).second) {
      reporter.Add(key.Mark(), child, "duplicate key");
      continue;
    }
    out.push_back(Entry{std::move(name), key, it->second, std::move(child)});
  }
  return out;
}

void ReportUnknownKey(const Entry& entry, std::string_view expected, Reporter& reporter) {
  reporter.Add(entry.key_node.Mark(), entry.path, "unknown key (expected one of: " + std::string(expected) + ")");
}

// ---------------------------------------------------------------------------
// Values

std::optional<long long> ParseInteger(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string IntegerExpectation(long long low, long long high) {
  return "expected an integer from " + std::to_string(low) + " to " + std::to_string(high) + ", got ";
}

namespace {

// The verdict on a number-valued entry whose scalar text did (`parsed`) or did
// not parse as a number, and whose value is or is not `in_range`: true when it
// is accepted, else reports why (a quoted number is a string, not a number).
bool AcceptNumber(const Entry& entry, const std::string& expectation, bool parsed, bool in_range, Reporter& reporter) {
  if (parsed && IsQuoted(entry.value)) {
    reporter.Add(entry.Where(), entry.path,
                 expectation + "the quoted string " + Describe(entry.value) + " (remove the quotes)");
    return false;
  }
  if (parsed && in_range) return true;
  reporter.Add(entry.Where(), entry.path, expectation + Describe(entry.value));
  return false;
}

}  // namespace

bool IsMappingOrEmpty(const Entry& entry, std::string_view what, Reporter& reporter) {
  if (entry.value.IsMap() || entry.value.IsNull()) return true;
  reporter.Add(entry.Where(), entry.path,
               "expected a mapping of " + std::string(what) + ", got " + Describe(entry.value));
  return false;
}

std::optional<bool> ReadBool(const Entry& entry, Reporter& reporter) {
  if (entry.value.IsScalar() && !IsQuoted(entry.value)) {
    const std::string& text = entry.value.Scalar();
    if (text == "true") return true;
    if (text == "false") return false;
  }
  reporter.Add(entry.Where(), entry.path, "expected true or false, got " + Describe(entry.value));
  return std::nullopt;
}

std::optional<long long> ReadInteger(const Entry& entry, long long low, long long high, Reporter& reporter) {
  std::optional<long long> value;
  if (entry.value.IsScalar()) value = ParseInteger(entry.value.Scalar());
  const bool in_range = value && *value >= low && *value <= high;
  if (!AcceptNumber(entry, IntegerExpectation(low, high), value.has_value(), in_range, reporter)) return std::nullopt;
  return value;
}

std::optional<double> ReadNumber(const Entry& entry, double low, double high, std::string_view low_text,
                                 std::string_view high_text, Reporter& reporter) {
  const std::string expectation =
      "expected a number from " + std::string(low_text) + " to " + std::string(high_text) + ", got ";
  bool parsed = false;
  double value = 0;
  if (entry.value.IsScalar()) {
    std::string_view text = entry.value.Scalar();
    if (!text.empty() && text.front() == '+') text.remove_prefix(1);
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    parsed = !text.empty() && ec == std::errc() && end == text.data() + text.size() && std::isfinite(value);
  }
  if (!AcceptNumber(entry, expectation, parsed, parsed && value >= low && value <= high, reporter)) {
    return std::nullopt;
  }
  return value;
}

std::string DurationExpectation(Millis low, Millis high) {
  std::string out = "expected a duration";
  if (low == Millis{1} && high == kMaxDuration) {
    out += " greater than 0";
  } else if (low == Millis{1}) {
    out += " greater than 0 and at most " + FormatDuration(high);
  } else if (low == Millis{0} && high != kMaxDuration) {
    out += " of at most " + FormatDuration(high);
  } else if (low != Millis{0}) {
    out += " from " + FormatDuration(low) + " to " + FormatDuration(high);
  }
  return out + " (like 250ms, 5s, 2m or 1h), got ";
}

std::optional<Millis> ReadDurationNode(const YAML::Node& node, const YAML::Mark& where, const std::string& path,
                                       Millis low, Millis high, Reporter& reporter) {
  if (node.IsScalar()) {
    const std::optional<Millis> value = ParseDuration(node.Scalar());
    if (value && *value >= low && *value <= high) return value;
  }
  reporter.Add(where, path, DurationExpectation(low, high) + Describe(node));
  return std::nullopt;
}

std::optional<Millis> ReadDuration(const Entry& entry, Millis low, Millis high, Reporter& reporter) {
  return ReadDurationNode(entry.value, entry.Where(), entry.path, low, high, reporter);
}

// ---------------------------------------------------------------------------
// Documents and files

// The 0-based line of a document whose first token is ',', if any.
std::optional<int> DocumentStartingWithComma(std::string_view text) {
  bool at_document_start = true;
  int line_number = 0;
  std::size_t pos = 0;
  while (pos <= text.size() && at_document_start) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    const auto first = line.find_first_not_of(" \t\r");
    if (first != std::string_view::npos) {
      line.remove_prefix(first);
      if (line.rfind("---", 0) == 0) {
        line.remove_prefix(3);
        const auto next = line.find_first_not_of(" \t\r");
        if (next != std::string_view::npos && line[next] == ',') return line_number;
        if (next != std::string_view::npos && line[next] != '#') at_document_start = false;
      } else if (line[0] == ',') {
        return line_number;
      } else if (line[0] != '#' && line[0] != '%') {
        at_document_start = false;
      }
    }
    if (!at_document_start) {
      // Later documents start after a "---" line.
      const auto marker = text.find("\n---", end);
      if (marker == std::string_view::npos) break;
      line_number += static_cast<int>(std::count(text.begin() + static_cast<std::ptrdiff_t>(pos),
                                                 text.begin() + static_cast<std::ptrdiff_t>(marker + 1), '\n'));
      pos = marker + 1;
      at_document_start = true;
      continue;
    }
    pos = end + 1;
    ++line_number;
  }
  return std::nullopt;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// yaml-cpp 0.7 has inputs on which it never returns, allocating without bound
// (fuzzing found several; the NUL and leading-comma cases are refused above).
// So the text is parsed first in a child process with a time and memory
// limit, and only parsed here when that child finished. Returns the problem,
// or "" when the text is safe to parse.
std::string PreflightYaml(const std::string& yaml_text) {
  constexpr int kTimeLimitMs = 5000;
  const pid_t child = fork();
  if (child < 0) return {};  // cannot check: parse as before
  if (child == 0) {
    if (!kSanitized) {  // sanitizers reserve huge address ranges; only the time limit applies there
      rlimit limit{512L << 20, 512L << 20};
      setrlimit(RLIMIT_AS, &limit);
    }
    try {
      (void)YAML::LoadAll(yaml_text);
    } catch (const std::bad_alloc&) {
      _exit(3);
    } catch (...) {}
    _exit(0);
  }
  int status = 0;
  for (int waited = 0; waited < kTimeLimitMs; waited += 5) {
    const pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) {
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
      if (WIFEXITED(status) && WEXITSTATUS(status) == 3) return "the YAML parser ran out of memory on this file";
      return "the YAML parser failed on this file";
    }
    if (done < 0) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  return "the YAML parser did not finish within 5 s on this file (a yaml-cpp 0.7 defect on malformed input); "
         "check its syntax";
}

void ParseSingleDocument(const std::string& yaml_text, Reporter& reporter,
                         const std::function<void(const YAML::Node& root)>& parse_root) {
  // yaml-cpp 0.7 loops forever on a NUL byte (found by fuzzing): refuse it first.
  if (const auto nul = yaml_text.find('\0'); nul != std::string::npos) {
    YAML::Mark mark = YAML::Mark::null_mark();
    mark.line =
        static_cast<int>(std::count(yaml_text.begin(), yaml_text.begin() + static_cast<std::ptrdiff_t>(nul), '\n'));
    reporter.Add(mark, "", "contains a NUL byte; a YAML file must be text");
    return;
  }
  // yaml-cpp 0.7 also loops forever, allocating without bound, on a document
  // whose first token is ',' (found by fuzzing): refuse that too.
  if (const auto line = DocumentStartingWithComma(yaml_text)) {
    YAML::Mark mark = YAML::Mark::null_mark();
    mark.line = *line;
    reporter.Add(mark, "", "invalid YAML: a document cannot start with ','");
    return;
  }
  if (const std::string problem = PreflightYaml(yaml_text); !problem.empty()) {
    reporter.Add(YAML::Mark::null_mark(), "", problem);
    return;
  }
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(yaml_text);
    if (documents.size() > 1) {
      reporter.Add(documents[1].Mark(), "",
                   "expected a single YAML document, found " + std::to_string(documents.size()));
    } else {
      parse_root(documents.empty() ? YAML::Node() : documents.front());
    }
  } catch (const YAML::Exception& e) {
    reporter.Add(e.mark, "", "invalid YAML: " + e.msg);
  }
}

std::string ReadConfigFile(const std::string& path, std::string_view what) {
  // Non-blocking open + fstat (base/file.hpp): a FIFO, a device or a symlink
  // to /dev/zero is refused before anything is read, so neither start-up nor
  // a SIGHUP reload can block the main thread or read without bound.
  try {
    return base::ReadSmallFile(path, base::ReadOptions{kMaxConfigFileBytes});
  } catch (const base::FileError& e) {
    const std::string message = e.what();
    // "PATH: cannot read WHAT: REASON", REASON being what ReadSmallFile said after the path.
    const std::string reason =
        message.compare(0, path.size() + 2, path + ": ") == 0 ? message.substr(path.size() + 2) : message;
    throw ConfigError({path + ": cannot read " + std::string(what) + ": " + reason});
  }
}

}  // namespace pgcourier::config::detail

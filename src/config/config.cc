// Parsing and strict validation of the TOML config (DESIGN §2).
//
// Every problem found is recorded with its position; the earliest one in the file is
// reported, so the user fixes the config top to bottom. A table only accepts keys the
// parser asked it for: each lookup registers the key as known, and whatever is left
// over at the end is an unknown key (with a "did you mean" from the known ones).
#include "config/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "common/http_util.h"
#include "common/units.h"
#include "config/webhook_presets.h"
#include "schedule/cron.h"
#include "queue/job.h"

namespace firebreak {
namespace {

constexpr int64_t kIntMax = std::numeric_limits<int>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr uint64_t kMinCacheSize = 64 * 1024;
// A config file is a few KiB; anything far larger is a wrong path, not a config.
constexpr size_t kMaxConfigBytes = 4 * 1024 * 1024;

constexpr std::string_view kSecretShape =
    "secret must be { env = \"...\" }, { file = \"...\" } or { vault = \"PATH#FIELD\" }";

// ----------------------------------------------------------------------------------
// Small text helpers

// Quotes a value for a message, escaping what would garble a terminal.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Optimal string alignment distance: an edit, insertion, deletion or swap of two
// neighbours costs 1, so "lisen"→"listen" and "listne"→"listen" are both close.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The closest candidate when it is close enough to be a plausible typo, else "".
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  std::string lowered(word);
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t limit = word.size() >= 6 ? 2 : 1;
  size_t best = limit + 1;
  std::string best_candidate;
  for (const std::string& candidate : candidates) {
    size_t distance = EditDistance(lowered, candidate);
    if (distance < best) {
      best = distance;
      best_candidate = candidate;
    }
  }
  return best <= limit ? best_candidate : "";
}

std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates) {
  std::string match = ClosestMatch(word, candidates);
  return match.empty() ? "" : " (did you mean " + Quote(match) + "?)";
}

// "a, b or c"
std::string ListChoices(const std::vector<std::string>& choices) {
  std::string out;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) out += i + 1 == choices.size() ? " or " : ", ";
    out += choices[i];
  }
  return out;
}

const char* TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

// Empty when `name` is fine as a source/integration name, else what is wrong.
std::string CheckName(std::string_view name, bool allow_colon) {
  if (name.empty()) return "must not be empty";
  for (char c : name) {
    if (!IsNameChar(c) && !(allow_colon && c == ':')) {
      return std::string("bad name ") + Quote(name) + " (use letters, digits, '_', '.', '-'" +
             (allow_colon ? ", ':'" : "") + ")";
    }
  }
  return "";
}

// RFC 6901: "" (the whole document) or "/a/b", where '~' only appears as ~0 or ~1.
std::string CheckJsonPointer(std::string_view pointer) {
  if (pointer.empty()) return "";
  std::string bad = "bad JSON pointer " + Quote(pointer);
  if (pointer[0] != '/') return bad + " (must be \"\" or start with '/', e.g. \"/event/id\")";
  for (size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] == '~' &&
        (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))) {
      return bad + " ('~' must be written ~0, '/' inside a key ~1)";
    }
  }
  return "";
}

// What is wrong with `key` as a [[jobs]] key: a JSON pointer into the payload, or the
// name of a search key ("slack.channel"); "" when nothing is.
std::string CheckJobKey(const std::string& key) {
  if (key.empty()) return "must not be empty (leave key out for no key)";
  if (key[0] == '/') return CheckJsonPointer(key);
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return "bad key " + Quote(key) +
             ": a JSON pointer (\"/event/channel\") or a search key name (\"slack.channel\")";
    }
  }
  return "";
}

// What is wrong with `pointer` as a search_keys entry of a source whose token (if any) is
// the body field `token_field`; "" when nothing is.
std::string SearchKeyProblem(const std::string& pointer, const std::string& token_field) {
  if (std::string problem = CheckJsonPointer(pointer); !problem.empty()) return problem;
  if (pointer.empty()) {
    return "the whole payload is not a key: point at a value, e.g. \"/user/id\"";
  }
  if (pointer.find_first_of(": \t\r\n") != std::string::npos) {
    return "a key's name cannot hold ':' (it ends the name) or blanks";
  }
  if (!token_field.empty() &&
      (pointer == token_field || pointer.rfind(token_field + "/", 0) == 0)) {
    return "points at the token that authenticates the request (" + token_field +
           "); it never leaves the ingress";
  }
  return "";
}

bool HasScheme(std::string_view url, std::initializer_list<std::string_view> schemes) {
  for (std::string_view scheme : schemes) {
    if (url.size() > scheme.size() && url.substr(0, scheme.size()) == scheme) return true;
  }
  return false;
}

// RFC 9110 token characters, which is what a header name may contain.
bool IsHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool IsHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

// ----------------------------------------------------------------------------------
// Problem collection

class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  std::string Where(const toml::source_region& at) const {
    return file_ + ":" + std::to_string(at.begin.line) + ":" + std::to_string(at.begin.column);
  }

  void Add(const toml::source_region& at, std::string_view key_path, std::string_view what) {
    problems_.push_back(
        Problem{at.begin.line, at.begin.column, problems_.size(),
                Where(at) + ": " + std::string(key_path) + ": " + std::string(what)});
  }

  bool empty() const { return problems_.empty(); }

  // The problem earliest in the file; among equals, the one found first.
  Status Earliest() const {
    auto earliest = std::min_element(
        problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
          return std::tie(a.line, a.column, a.order) < std::tie(b.line, b.column, b.order);
        });
    return InvalidArgument(earliest->message);
  }

 private:
  struct Problem {
    toml::source_index line;
    toml::source_index column;
    size_t order;
    std::string message;
  };
  std::string file_;
  std::vector<Problem> problems_;
};

// ----------------------------------------------------------------------------------
// Typed access to one table

enum class Need { kOptional, kRequired };

// A view of one TOML table at `path` (e.g. "jobs[1].backoff"). Readers leave the output
// unchanged and record a problem when a value is present but wrong; they return true
// when the output was assigned.
class Section {
 public:
  Section(Problems& problems, const toml::table& table, std::string path)
      : problems_(&problems), table_(&table), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  const toml::source_region& source() const { return table_->source(); }
  Problems& problems() { return *problems_; }

  std::string KeyPath(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  // Looks `key` up and remembers it as a key this table may have.
  const toml::node* Find(std::string_view key) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
    auto it = table_->find(key);
    return it == table_->end() ? nullptr : &it->second;
  }
  bool Has(std::string_view key) { return Find(key) != nullptr; }

  // Where the key itself is written (the table's header when the key is absent).
  const toml::source_region& KeySource(std::string_view key) const {
    auto it = table_->find(key);
    return it == table_->end() ? table_->source() : it->first.source();
  }

  void Fail(std::string_view key, std::string_view what) {
    problems_->Add(KeySource(key), KeyPath(key), what);
  }
  void FailMissing(std::string_view key, std::string_view why = "") {
    problems_->Add(table_->source(), KeyPath(key),
                   std::string("required key is missing") + std::string(why));
  }
  void FailType(std::string_view key, std::string_view expected, const toml::node& node) {
    Fail(key, "expected " + std::string(expected) + ", not " + TypeName(node));
  }

  bool String(std::string_view key, std::string& out, Need need = Need::kOptional) {
    const toml::node* node = Present(key, need);
    if (node == nullptr) return false;
    const auto* value = node->as_string();
    if (value == nullptr) {
      FailType(key, "a string", *node);
      return false;
    }
    out = value->get();
    return true;
  }

  bool Integer(std::string_view key, int64_t& out, int64_t min, int64_t max,
               Need need = Need::kOptional) {
    const toml::node* node = Present(key, need);
    if (node == nullptr) return false;
    const auto* value = node->as_integer();
    if (value == nullptr) {
      FailType(key, "an integer", *node);
      return false;
    }
    int64_t number = value->get();
    if (number < min || number > max) {
      Fail(key, RangeMessage(std::to_string(number), static_cast<double>(min),
                             static_cast<double>(max), max == kIntMax || max == kInt64Max));
      return false;
    }
    out = number;
    return true;
  }

  bool Int(std::string_view key, int& out, int64_t min, int64_t max = kIntMax) {
    int64_t number = 0;
    if (!Integer(key, number, min, std::min(max, kIntMax))) return false;
    out = static_cast<int>(number);
    return true;
  }

  // Accepts an integer or a float; `min_exclusive` makes the lower bound strict.
  bool Number(std::string_view key, double& out, double min, double max,
              bool min_exclusive = false) {
    const toml::node* node = Present(key, Need::kOptional);
    if (node == nullptr) return false;
    double number = 0;
    if (const auto* as_int = node->as_integer()) {
      number = static_cast<double>(as_int->get());
    } else if (const auto* as_float = node->as_floating_point()) {
      number = as_float->get();
    } else {
      FailType(key, "a number", *node);
      return false;
    }
    bool too_low = min_exclusive ? !(number > min) : !(number >= min);
    if (too_low || !(number <= max)) {
      char text[64];
      std::snprintf(text, sizeof text, "%g", number);
      Fail(key, min_exclusive ? "must be above " + Format(min) + " and at most " + Format(max) +
                                    ", got " + text
                              : RangeMessage(text, min, max, std::isinf(max)));
      return false;
    }
    out = number;
    return true;
  }

  bool Bool(std::string_view key, bool& out) {
    const toml::node* node = Present(key, Need::kOptional);
    if (node == nullptr) return false;
    const auto* value = node->as_boolean();
    if (value == nullptr) {
      FailType(key, "a boolean (true or false)", *node);
      return false;
    }
    out = value->get();
    return true;
  }

  // A string or an array of strings (`single_allowed`) or only an array; element
  // problems name the element ("sources[0].headers[2]").
  bool StringList(std::string_view key, std::vector<std::string>& out, bool single_allowed) {
    const toml::node* node = Present(key, Need::kOptional);
    if (node == nullptr) return false;
    if (const auto* single = node->as_string(); single != nullptr && single_allowed) {
      out = {single->get()};
      return true;
    }
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      FailType(key, single_allowed ? "a string or an array of strings" : "an array of strings",
               *node);
      return false;
    }
    std::vector<std::string> values;
    for (size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      const auto* value = element.as_string();
      if (value == nullptr) {
        problems_->Add(element.source(), KeyPath(key) + "[" + std::to_string(i) + "]",
                       std::string("expected a string, not ") + TypeName(element));
        return false;
      }
      values.push_back(value->get());
    }
    out = std::move(values);
    return true;
  }

  // Where one element of an array value is written (the key when it is not an array).
  const toml::source_region& ElementSource(std::string_view key, size_t index) const {
    auto it = table_->find(key);
    if (it == table_->end()) return table_->source();
    if (const toml::array* array = it->second.as_array(); array && index < array->size()) {
      return array->get(index)->source();
    }
    return it->first.source();
  }

  // A duration string; `allow_zero` false requires it to be above zero.
  bool Duration(std::string_view key, milliseconds& out, bool allow_zero = false) {
    const toml::node* node = Present(key, Need::kOptional);
    if (node == nullptr) return false;
    const auto* value = node->as_string();
    if (value == nullptr) {
      FailType(key, "a string (a duration such as \"30s\")", *node);
      return false;
    }
    std::optional<milliseconds> duration = ParseDuration(value->get());
    if (!duration) {
      Fail(key, "bad duration " + Quote(value->get()) +
                    " (use e.g. \"250ms\", \"5s\", \"2m\", \"24h\")");
      return false;
    }
    if (!allow_zero && duration->count() <= 0) {
      Fail(key, "must be above zero");
      return false;
    }
    out = *duration;
    return true;
  }

  bool Size(std::string_view key, uint64_t& out) {
    const toml::node* node = Present(key, Need::kOptional);
    if (node == nullptr) return false;
    const auto* value = node->as_string();
    if (value == nullptr) {
      FailType(key, "a string (a size such as \"1MiB\")", *node);
      return false;
    }
    std::optional<uint64_t> size = ParseSize(value->get());
    if (!size) {
      Fail(key, "bad size " + Quote(value->get()) +
                    " (use e.g. \"512KiB\", \"1MiB\", \"10MB\" or a number of bytes)");
      return false;
    }
    if (*size == 0) {
      Fail(key, "must be above zero");
      return false;
    }
    out = *size;
    return true;
  }

  // A string that must be one of `choices`; `noun` names it in the message.
  bool Choice(std::string_view key, std::string& out, const std::vector<std::string>& choices,
              std::string_view noun, Need need = Need::kOptional) {
    std::string text;
    if (!String(key, text, need)) return false;
    if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
      std::string match = ClosestMatch(text, choices);
      Fail(key, "unknown " + std::string(noun) + " " + Quote(text) + " (expected " +
                    ListChoices(choices) +
                    (match.empty() ? "" : "; did you mean " + Quote(match) + "?") + ")");
      return false;
    }
    out = text;
    return true;
  }

  // A sub-table (inline or not).
  std::optional<Section> Table(std::string_view key, Need need = Need::kOptional) {
    const toml::node* node = Present(key, need);
    if (node == nullptr) return std::nullopt;
    const toml::table* table = node->as_table();
    if (table == nullptr) {
      FailType(key, "a table", *node);
      return std::nullopt;
    }
    return Section(*problems_, *table, KeyPath(key));
  }

  // [[key]]: an array whose elements are all tables.
  std::vector<Section> TableArray(std::string_view key) {
    std::vector<Section> out;
    const toml::node* node = Present(key, Need::kOptional);
    if (node == nullptr) return out;
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      Fail(key, std::string("expected an array of tables ([[") + std::string(key) + "]]), not " +
                    TypeName(*node));
      return out;
    }
    for (size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      std::string element_path = KeyPath(key) + "[" + std::to_string(i) + "]";
      if (const toml::table* table = element.as_table()) {
        out.emplace_back(*problems_, *table, element_path);
      } else {
        problems_->Add(element.source(), element_path,
                       std::string("expected a table, not ") + TypeName(element));
      }
    }
    return out;
  }

  // { env = "..." } | { file = "..." } | { vault = "PATH#FIELD" }.
  std::optional<Secret> SecretRef(std::string_view key, Need need = Need::kOptional) {
    const toml::node* node = Present(key, need);
    if (node == nullptr) return std::nullopt;
    if (node->is_string()) {
      Fail(key, std::string(kSecretShape) + ", not a literal");
      return std::nullopt;
    }
    const toml::table* table = node->as_table();
    if (table == nullptr) {
      Fail(key, std::string(kSecretShape) + ", not " + TypeName(*node));
      return std::nullopt;
    }
    Section reference(*problems_, *table, KeyPath(key));
    return reference.ReadSecret();
  }

  // Reads this table as a secret reference.
  std::optional<Secret> ReadSecret() {
    static const std::vector<std::pair<std::string, Secret::Kind>> kKinds = {
        {"env", Secret::Kind::kEnv},
        {"file", Secret::Kind::kFile},
        {"vault", Secret::Kind::kVault}};
    std::vector<std::string> given;
    Secret secret;
    bool valid = true;
    for (const auto& [name, kind] : kKinds) {
      if (!Has(name)) continue;
      given.push_back(name);
      std::string ref;
      if (!String(name, ref)) {
        valid = false;
        continue;
      }
      secret.kind = kind;
      secret.ref = ref;
      if (std::string problem = CheckSecretRef(kind, ref); !problem.empty()) {
        Fail(name, problem);
        valid = false;
      }
    }
    // { evn = "X" } is best reported as the typo it is, not as a missing env.
    bool had_unknown_keys = RejectUnknownKeys();
    if (given.empty() && had_unknown_keys) return std::nullopt;
    if (given.size() != 1) {
      problems_->Add(source(), path_,
                     given.empty() ? std::string(kSecretShape)
                                   : "secret must have exactly one of env, file or vault, not " +
                                         ListChoices(given));
      return std::nullopt;
    }
    if (!valid) return std::nullopt;
    secret.where = problems_->Where(source());
    return secret;
  }

  // Every key of the table that no reader asked for is a typo or a misplaced key.
  // Returns whether there was one.
  bool RejectUnknownKeys() {
    bool found = false;
    for (auto&& [key, node] : *table_) {
      if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
      problems_->Add(key.source(), KeyPath(key.str()),
                     "unknown key" + DidYouMean(key.str(), known_));
      found = true;
    }
    return found;
  }

 private:
  const toml::node* Present(std::string_view key, Need need) {
    const toml::node* node = Find(key);
    if (node == nullptr && need == Need::kRequired) FailMissing(key);
    return node;
  }

  static std::string Format(double number) {
    char text[64];
    std::snprintf(text, sizeof text, "%g", number);
    return text;
  }

  static std::string RangeMessage(const std::string& got, double min, double max,
                                  bool unbounded_above) {
    if (unbounded_above) return "must be at least " + Format(min) + ", got " + got;
    return "must be between " + Format(min) + " and " + Format(max) + ", got " + got;
  }

  static std::string CheckSecretRef(Secret::Kind kind, std::string_view ref) {
    if (ref.empty()) return "must not be empty";
    switch (kind) {
      case Secret::Kind::kEnv: {
        bool valid = !std::isdigit(static_cast<unsigned char>(ref[0])) &&
                     std::all_of(ref.begin(), ref.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                     });
        // Not echoed: a value pasted here by mistake may be the secret itself.
        if (!valid) {
          return "bad environment variable name (use letters, digits and '_', not starting "
                 "with a digit)";
        }
        return "";
      }
      case Secret::Kind::kFile:
        return "";
      case Secret::Kind::kVault: {
        size_t hash = ref.find('#');
        if (hash == std::string_view::npos || hash == 0 || hash + 1 == ref.size()) {
          return "vault reference must be \"PATH#FIELD\", e.g. \"secret/data/bot#token\"";
        }
        return "";
      }
    }
    return "";
  }

  Problems* problems_;
  const toml::table* table_;
  std::string path_;
  std::vector<std::string> known_;
};

// ----------------------------------------------------------------------------------
// The sections of the file

// A reference checked once every section is read (forward references are fine).
struct JobReference {
  toml::source_region at;
  std::string key_path;
  std::string job_type;
};

class ConfigParser {
 public:
  ConfigParser(const toml::table& root, const std::string& file)
      : problems_(file), root_(problems_, root, "") {
    config_.file = file;
  }

  Result<Config> Run() {
    if (auto server = root_.Table("server")) ParseServer(*server);
    if (auto queue = root_.Table("queue")) ParseQueue(*queue);
    if (auto worker = root_.Table("worker")) ParseWorker(*worker);
    if (auto store = root_.Table("store")) ParseStore(*store);
    for (Section& source : root_.TableArray("sources")) ParseSource(source);
    for (Section& job : root_.TableArray("jobs")) ParseJob(job);
    for (Section& integration : root_.TableArray("integrations")) ParseIntegration(integration);
    for (Section& schedule : root_.TableArray("schedules")) ParseSchedule(schedule);
    if (auto telemetry = root_.Table("telemetry")) ParseTelemetry(*telemetry);
    root_.RejectUnknownKeys();
    // A broken [[jobs]] entry would make every source pointing at it look undefined too;
    // report the root cause alone.
    if (problems_.empty()) CheckJobReferences();
    CheckAdminListen();
    if (!problems_.empty()) return problems_.Earliest();
    return std::move(config_);
  }

 private:
  void CheckAddress(Section& section, std::string_view key, const std::string& address) {
    Result<std::pair<std::string, uint16_t>> parsed = ParseListenAddress(address);
    if (!parsed.ok()) section.Fail(key, parsed.status().message());
  }

  // queue.timeout / store.timeout: a duration within [kMinStoreTimeout, kMaxStoreTimeout].
  static void StoreTimeout(Section& s, milliseconds& out) {
    milliseconds timeout = out;
    if (!s.Duration("timeout", timeout)) return;
    if (timeout < kMinStoreTimeout || timeout > kMaxStoreTimeout) {
      s.Fail("timeout", "must be between " + FormatDuration(kMinStoreTimeout) + " and " +
                            FormatDuration(kMaxStoreTimeout));
      return;
    }
    out = timeout;
  }

  void ParseServer(Section& s) {
    ServerConfig& server = config_.server;
    if (s.String("listen", server.listen)) CheckAddress(s, "listen", server.listen);
    s.Int("threads", server.threads, 0, 4096);
    s.Size("max_body", server.max_body);
    s.Duration("read_timeout", server.read_timeout);
    s.Int("max_connections", server.max_connections, 1, 1'000'000);
    server.admin_token = s.SecretRef("admin_token");
    for (Section& entry : s.TableArray("admin_tokens")) ParseAdminToken(entry);
    admin_listen_at_ = s.KeySource("admin_listen");
    if (s.String("admin_listen", server.admin_listen) && !server.AdminOnIngress()) {
      if (server.admin_listen.empty()) {
        s.Fail("admin_listen",
               "must not be empty: the admin API listens on \"127.0.0.1:8082\" unless told "
               "otherwise; write \"ingress\" to serve it on server.listen as before, or a "
               "\"host:port\" of its own");
      } else {
        CheckAddress(s, "admin_listen", server.admin_listen);
      }
    }
    s.RejectUnknownKeys();
  }

  void ParseAdminToken(Section& s) {
    AdminTokenConfig token;
    token.where = problems_.Where(s.source());
    bool named = false;
    if (s.String("name", token.name, Need::kRequired)) {
      if (std::string problem = CheckName(token.name, false); !problem.empty()) {
        s.Fail("name", problem);
      } else if (token.name == kAdminTokenName && config_.server.admin_token) {
        s.Fail("name", std::string("\"") + kAdminTokenName +
                           "\" is server.admin_token's name; choose another");
      } else if (auto [it, inserted] = admin_token_names_.emplace(token.name, token.where);
                 !inserted) {
        s.Fail("name", "duplicate admin token name " + Quote(token.name) +
                           " (first defined at " + it->second + ")");
      } else {
        named = true;
      }
    }
    std::optional<Secret> secret = s.SecretRef("token", Need::kRequired);
    std::string scope;
    bool scoped = s.Choice("scope", scope, {"read", "operate", "admin"}, "scope", Need::kRequired);
    s.RejectUnknownKeys();
    if (!named || !secret || !scoped) return;
    token.token = std::move(*secret);
    token.scope = scope == "admin" ? AdminScope::kAdmin
                  : scope == "operate" ? AdminScope::kOperate
                                       : AdminScope::kRead;
    config_.server.admin_tokens.push_back(std::move(token));
  }

  // With the admin API on a listener of its own, that listener must not take the port
  // of another one on an overlapping address (the bind would fail at start, or worse,
  // succeed on another interface). Checked once every section is read.
  void CheckAdminListen() {
    const ServerConfig& server = config_.server;
    if (!server.AdminEnabled() || server.AdminOnIngress()) return;
    auto admin = ParseListenAddress(server.admin_listen, /*allow_port_zero=*/true);
    if (!admin.ok() || admin->second == 0) return;
    const std::pair<const char*, const std::string*> others[] = {
        {"server.listen", &server.listen}, {"worker.sidecar", &config_.worker.sidecar}};
    for (const auto& [key, address] : others) {
      auto other = ParseListenAddress(*address, /*allow_port_zero=*/true);
      if (address->empty() || !other.ok() || other->second != admin->second) continue;
      if (!HostsOverlap(admin->first, other->first)) continue;
      problems_.Add(admin_listen_at_, "server.admin_listen",
                    Quote(server.admin_listen) + " takes the port of " + key + " (" +
                        Quote(*address) + "); choose another port, or \"ingress\" to serve "
                        "the admin API on server.listen");
    }
  }

  static bool HostsOverlap(const std::string& a, const std::string& b) {
    auto canonical = [](const std::string& host) {
      return host == "localhost" ? std::string("127.0.0.1") : host;
    };
    auto wildcard = [](const std::string& host) { return host == "0.0.0.0" || host == "::"; };
    return wildcard(a) || wildcard(b) || canonical(a) == canonical(b);
  }

  void ParseQueue(Section& s) {
    QueueConfig& queue = config_.queue;
    s.Choice("backend", queue.backend, {"sqlite", "redis"}, "backend");
    if (s.String("path", queue.path) && queue.path.empty() && queue.backend == "sqlite") {
      s.Fail("path", "must not be empty with backend \"sqlite\"");
    }
    // hiredis 0.14 (Debian 12) has no TLS, so rediss:// cannot be honoured: refused here
    // rather than silently sent in clear text.
    if (s.String("url", queue.url) && queue.backend == "redis" &&
        !HasScheme(queue.url, {"redis://"})) {
      s.Fail("url", "expected a redis://[[user]:password@]host[:port][/db] URL (TLS rediss:// "
                    "and unix:// are not supported by this build)");
    }
    s.Integer("max_depth", queue.max_depth, 1, kInt64Max);
    s.Duration("dedupe_ttl", queue.dedupe_ttl);
    std::string durability;
    if (s.Choice("durability", durability, {"fsync", "process"}, "durability")) {
      queue.durability = durability == "fsync" ? Durability::kFsync : Durability::kProcess;
    }
    StoreTimeout(s, queue.timeout);
    if (s.Size("cache_size", queue.cache_size) && queue.cache_size < kMinCacheSize) {
      s.Fail("cache_size", "must be at least 64KiB");
    }
    s.Duration("retention", queue.retention, /*allow_zero=*/true);
    if (s.Duration("retention_payload", queue.retention_payload, /*allow_zero=*/true) &&
        queue.retention_payload > queue.retention) {
      s.Fail("retention_payload", "must not be longer than retention (" +
                                      FormatDuration(queue.retention) + ")");
    }
    std::vector<std::string> redact;
    if (s.StringList("redact", redact, false)) {
      for (size_t i = 0; i < redact.size(); ++i) {
        std::string problem = CheckJsonPointer(redact[i]);
        if (problem.empty() && redact[i].empty()) problem = "the whole payload cannot be redacted";
        if (!problem.empty()) {
          problems_.Add(s.ElementSource("redact", i),
                        s.KeyPath("redact") + "[" + std::to_string(i) + "]", problem);
          return;
        }
      }
      queue.redact = std::move(redact);
    }
    s.RejectUnknownKeys();
  }

  void ParseWorker(Section& s) {
    WorkerConfig& worker = config_.worker;
    s.Int("max_in_flight", worker.max_in_flight, 1);
    s.Duration("shutdown_grace", worker.shutdown_grace, /*allow_zero=*/true);
    // "" turns the sidecar off; port 0 picks a free port (handlers read FIREBREAK_SIDECAR).
    if (s.String("sidecar", worker.sidecar) && !worker.sidecar.empty()) {
      Result<std::pair<std::string, uint16_t>> parsed =
          ParseListenAddress(worker.sidecar, /*allow_port_zero=*/true);
      if (!parsed.ok()) {
        s.Fail("sidecar", parsed.status().message());
      } else if (!IsLoopbackAddress(parsed->first)) {
        s.Fail("sidecar",
               "must be a loopback address (127.0.0.1, [::1] or localhost): "
               "handlers reach it on the same machine and it is not authenticated");
      }
    }
    s.RejectUnknownKeys();
  }

  void ParseStore(Section& s) {
    StoreConfig& store = config_.store;
    s.Choice("sessions", store.sessions, {"sqlite", "redis"}, "sessions store");
    if (s.String("sessions_url", store.sessions_url) && store.sessions == "redis" &&
        !HasScheme(store.sessions_url, {"redis://"})) {
      s.Fail("sessions_url", "expected a redis://[[user]:password@]host[:port][/db] URL (TLS "
                             "rediss:// and unix:// are not supported by this build)");
    }
    s.Choice("state", store.state, {"sqlite", "postgres"}, "state store");
    if (s.String("state_url", store.state_url) && store.state == "postgres" &&
        !HasScheme(store.state_url, {"postgresql://", "postgres://"})) {
      s.Fail("state_url", "expected a postgresql:// URL");
    }
    StoreTimeout(s, store.timeout);
    s.RejectUnknownKeys();
  }

  void ParseSource(Section& s) {
    SourceConfig source;
    source.where = problems_.Where(s.source());

    if (s.String("name", source.name, Need::kRequired)) {
      if (std::string problem = CheckName(source.name, false); !problem.empty()) {
        s.Fail("name", problem);
      } else if (auto [it, inserted] = source_names_.emplace(source.name, source.where);
                 !inserted) {
        s.Fail("name", "duplicate source name " + Quote(source.name) + " (first defined at " +
                           it->second + ")");
      }
    }

    std::string kind;
    static const std::vector<std::string> kKinds = {"slack",  "discord", "telegram",
                                                    "github", "meta",    "hmac"};
    std::vector<std::string> kinds = kKinds;
    for (const WebhookPreset& preset : WebhookPresets()) kinds.push_back(preset.name);
    bool has_kind = s.Choice("kind", kind, kinds, "kind", Need::kRequired);
    if (has_kind) {
      const size_t index = static_cast<size_t>(std::find(kinds.begin(), kinds.end(), kind) -
                                                kinds.begin());
      if (index < kKinds.size()) {
        source.kind = static_cast<SourceKind>(index);
      } else {
        const WebhookPreset* preset = FindWebhookPreset(kind);
        source.kind = SourceKind::kHmac;
        source.preset = preset;
        source.scheme = preset->scheme;
        source.tolerance = preset->tolerance;
        source.dedupe = preset->dedupe;
        source.headers = preset->headers;
        source.search_keys = preset->search_keys;
      }
    }

    if (s.String("path", source.path, Need::kRequired)) CheckSourcePath(s, source);

    if (s.String("job", source.job, Need::kRequired)) {
      job_references_.push_back({s.KeySource("job"), s.KeyPath("job"), source.job});
    }
    s.Int("priority", source.priority, 0, kMaxPriority);

    source.secret = s.SecretRef("secret");
    source.previous_secret = s.SecretRef("previous_secret");
    source.verify_token = s.SecretRef("verify_token");
    source.signing_key = s.SecretRef("signing_key");
    s.String("public_key", source.public_key);

    if (has_kind) CheckKindSpecificKeys(s, source, kind);
    ParseEnvelopeHeaders(s, source);
    ParseSearchKeys(s, source);
    s.RejectUnknownKeys();
    config_.sources.push_back(std::move(source));
  }

  void CheckSourcePath(Section& s, const SourceConfig& source) {
    const std::string& path = source.path;
    if (path.empty() || path[0] != '/') {
      s.Fail("path", "must start with '/', e.g. \"/hooks/" +
                         (source.name.empty() ? std::string("slack") : source.name) + "\"");
      return;
    }
    if (path.find_first_of("?# \t\r\n") != std::string::npos) {
      s.Fail("path", "must be a plain URL path (no spaces, '?' or '#')");
      return;
    }
    if (path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/admin" ||
        path.rfind("/admin/", 0) == 0) {
      s.Fail("path", Quote(path) +
                         " is reserved for firebreak's own endpoints (/healthz, "
                         "/readyz, /metrics, /admin)");
      return;
    }
    auto [it, inserted] = source_paths_.emplace(path, source.name);
    if (!inserted) {
      s.Fail("path", "path " + Quote(path) + " is already used by source " + Quote(it->second));
    }
  }

  void CheckKindSpecificKeys(Section& s, SourceConfig& source, const std::string& kind) {
    const bool is_signed = source.kind == SourceKind::kHmac;  // hmac and the presets
    const bool is_discord = source.kind == SourceKind::kDiscord;
    const bool is_meta = source.kind == SourceKind::kMeta;
    std::string this_kind = " (this source is kind " + Quote(kind) + ")";

    if (is_discord) {
      if (s.Has("secret")) {
        s.Fail("secret", "kind \"discord\" verifies with public_key, not a secret");
      }
      if (!s.Has("public_key")) {
        s.FailMissing("public_key", " (kind \"discord\" needs the application's public key)");
      } else if (source.public_key.size() != 64 || !IsHex(source.public_key)) {
        s.Fail("public_key",
               "expected 64 hex characters (the Ed25519 public key from the "
               "Discord developer portal)");
      }
    } else {
      if (!s.Has("secret")) {
        s.FailMissing("secret", " (kind " + Quote(kind) + " verifies requests with a secret)");
      }
      if (s.Has("public_key"))
        s.Fail("public_key", "only allowed for kind \"discord\"" + this_kind);
      if (s.Has("signing_key"))
        s.Fail("signing_key", "only allowed for kind \"discord\"" + this_kind);
    }

    if (is_meta) {
      if (!s.Has("verify_token")) {
        s.FailMissing("verify_token", " (kind \"meta\" needs it for the subscription handshake)");
      }
    } else if (s.Has("verify_token")) {
      s.Fail("verify_token", "only allowed for kind \"meta\"" + this_kind);
    }

    if (!is_signed) {
      for (std::string_view key : {"header", "prefix", "algorithm", "scheme"}) {
        if (s.Has(key)) s.Fail(key, "only allowed for kind \"hmac\"" + this_kind);
      }
      for (std::string_view key : {"dedupe", "previous_secret", "tolerance", "public_url"}) {
        if (s.Has(key)) {
          s.Fail(key, "only allowed for kind \"hmac\" and the provider presets" + this_kind);
        }
      }
      return;
    }
    if (source.preset != nullptr) {
      for (std::string_view key : {"header", "prefix", "algorithm", "scheme"}) {
        if (s.Has(key)) {
          s.Fail(key, "kind " + Quote(kind) +
                          " has a fixed signature scheme; write your own with kind = \"hmac\"");
        }
      }
    } else {
      ParseCustomScheme(s, source.scheme);
    }

    if (s.Has("tolerance")) {
      if (!source.scheme.HasTimestamp()) {
        s.Fail("tolerance", "this scheme has no signed timestamp to check it against");
      } else {
        s.Duration("tolerance", source.tolerance);
      }
    }
    ParseDedupe(s, source);
    const bool signs_url = source.scheme.signed_template.find("{url}") != std::string::npos;
    if (s.String("public_url", source.public_url)) {
      if (!signs_url) {
        s.Fail("public_url", "only used by schemes that sign the request URL ({url})");
      } else if (!HasScheme(source.public_url, {"http://", "https://"}) ||
                 source.public_url.find_first_of("?# ") != std::string::npos ||
                 source.public_url.back() == '/') {
        s.Fail("public_url",
               "expected the origin the provider calls, without a trailing '/', e.g. "
               "\"https://bot.example.com\"");
      }
    }
  }

  // kind = "hmac": the header/prefix/algorithm shorthand and the `scheme` table.
  void ParseCustomScheme(Section& s, SignatureScheme& scheme) {
    s.String("header", scheme.header);
    s.String("prefix", scheme.prefix);
    static const std::vector<std::string> kAlgorithms = {"sha1", "sha256", "sha512"};
    s.Choice("algorithm", scheme.algorithm, kAlgorithms, "algorithm");
    if (s.Has("header") && !IsHeaderName(scheme.header)) {
      s.Fail("header", "bad header name " + Quote(scheme.header));
    }
    std::optional<Section> table = s.Table("scheme");
    if (!table) return;
    Section& t = *table;
    for (std::string_view key : {"header", "prefix", "algorithm"}) {
      if (s.Has(key) && t.Has(key)) {
        t.Fail(key, "also set as " + s.KeyPath(key) + "; set it in one place");
      }
    }
    std::string text;
    if (t.Choice("mode", text, {"hmac", "token"}, "mode")) {
      scheme.mode = text == "token" ? SignatureScheme::Mode::kToken : SignatureScheme::Mode::kHmac;
    }
    t.Choice("algorithm", scheme.algorithm, kAlgorithms, "algorithm");
    if (t.Choice("encoding", text, {"hex", "base64"}, "encoding")) {
      scheme.encoding =
          text == "base64" ? SignatureScheme::Encoding::kBase64 : SignatureScheme::Encoding::kHex;
    }
    if (t.Choice("secret_encoding", text, {"raw", "base64"}, "secret encoding")) {
      scheme.secret_encoding = text == "base64" ? SignatureScheme::SecretEncoding::kBase64
                                                : SignatureScheme::SecretEncoding::kRaw;
    }
    t.String("secret_prefix", scheme.secret_prefix);
    if (t.String("header", scheme.header) && !IsHeaderName(scheme.header)) {
      t.Fail("header", "bad header name " + Quote(scheme.header));
    }
    t.String("prefix", scheme.prefix);
    t.String("separator", scheme.separator);
    if (t.String("signed", scheme.signed_template)) {
      Result<std::vector<TemplatePart>> parts = ParseSignedTemplate(scheme.signed_template);
      if (!parts.ok()) {
        t.Fail("signed", parts.status().message());
      } else if (scheme.signed_template.find("{body}") == std::string::npos) {
        t.Fail("signed", "must include {body}: a signature that does not cover the body "
                         "lets anyone change it");
      }
    }
    int timestamp_sources = 0;
    if (t.String("timestamp_header", scheme.timestamp_header)) {
      ++timestamp_sources;
      if (!IsHeaderName(scheme.timestamp_header)) {
        t.Fail("timestamp_header", "bad header name " + Quote(scheme.timestamp_header));
      }
    }
    if (t.String("timestamp_entry", scheme.timestamp_entry)) {
      ++timestamp_sources;
      if (scheme.timestamp_entry.empty()) t.Fail("timestamp_entry", "must not be empty");
    }
    if (t.String("timestamp_field", scheme.timestamp_field)) {
      ++timestamp_sources;
      if (std::string problem = CheckJsonPointer(scheme.timestamp_field); !problem.empty()) {
        t.Fail("timestamp_field", problem);
      } else if (scheme.timestamp_field.empty()) {
        t.Fail("timestamp_field", "must point into the body, e.g. \"/timestamp\"");
      }
    }
    if (timestamp_sources > 1) {
      t.Fail("timestamp_header",
             "give the timestamp one place: timestamp_header, timestamp_entry or "
             "timestamp_field");
    }
    if (t.Choice("timestamp_format", text, {"unix", "unix_ms", "rfc3339"}, "timestamp format")) {
      scheme.timestamp_format = text == "unix_ms" ? SignatureScheme::TimestampFormat::kUnixMillis
                                : text == "rfc3339"
                                    ? SignatureScheme::TimestampFormat::kRfc3339
                                    : SignatureScheme::TimestampFormat::kUnixSeconds;
    }
    if (scheme.signed_template.find("{timestamp}") != std::string::npos &&
        scheme.timestamp_header.empty() && scheme.timestamp_entry.empty()) {
      t.Fail("signed", "uses {timestamp} but the scheme has no timestamp_header or "
                       "timestamp_entry to take it from");
    }
    if (t.String("token_field", scheme.token_field)) {
      if (std::string problem = CheckJsonPointer(scheme.token_field); !problem.empty()) {
        t.Fail("token_field", problem);
      } else if (scheme.token_field.empty()) {
        t.Fail("token_field", "must point into the body, e.g. \"/token\"");
      }
    }
    if (scheme.mode == SignatureScheme::Mode::kToken) {
      for (std::string_view key : {"algorithm", "encoding", "secret_encoding", "secret_prefix",
                                   "prefix", "separator", "signed", "timestamp_header",
                                   "timestamp_entry", "timestamp_field", "timestamp_format"}) {
        if (t.Has(key)) t.Fail(key, "only for mode \"hmac\" (this scheme is mode \"token\")");
      }
      if (t.Has("token_field") && (t.Has("header") || s.Has("header"))) {
        t.Fail("token_field", "the token comes from a header or a body field, not both");
      }
    } else if (t.Has("token_field")) {
      t.Fail("token_field", "only for mode \"token\"");
    }
    t.RejectUnknownKeys();
  }

  // dedupe = "/json/pointer" | "header:Name" | "body", or an array of them: the first
  // one present gives the key.
  void ParseDedupe(Section& s, SourceConfig& source) {
    std::vector<std::string> dedupe;
    if (!s.StringList("dedupe", dedupe, true)) return;
    if (dedupe.empty()) {
      s.Fail("dedupe", "must not be empty (leave it out to dedupe on the body's hash)");
      return;
    }
    for (size_t i = 0; i < dedupe.size(); ++i) {
      std::string& entry = dedupe[i];
      if (entry.empty()) entry = "body";  // dedupe = "" has always meant the body hash
      std::string problem;
      if (entry == "body") {
        if (i + 1 != dedupe.size()) problem = "\"body\" is always present: put it last";
      } else if (entry.rfind("header:", 0) == 0) {
        if (!IsHeaderName(entry.substr(7))) problem = "bad header name " + Quote(entry.substr(7));
      } else if (problem = CheckJsonPointer(entry); problem.empty() && entry[0] != '/') {
        problem = "expected a JSON pointer (\"/id\"), \"header:Name\" or \"body\"";
      } else if (!problem.empty()) {
        problem += "; or \"header:Name\", or \"body\"";
      }
      if (!problem.empty()) {
        if (dedupe.size() == 1 && s.Find("dedupe")->is_string()) {
          s.Fail("dedupe", problem);
        } else {
          problems_.Add(s.ElementSource("dedupe", i),
                        s.KeyPath("dedupe") + "[" + std::to_string(i) + "]", problem);
        }
        return;
      }
    }
    source.dedupe = std::move(dedupe);
  }

  // headers = ["X-Shopify-Topic", ...]: copied into the envelope, on top of the preset's.
  // Credentials and signatures are refused: handlers must never see them.
  void ParseEnvelopeHeaders(Section& s, SourceConfig& source) {
    std::vector<std::string> names;
    if (!s.StringList("headers", names, false)) return;
    std::vector<std::string> secret_headers = {"authorization", "proxy-authorization", "cookie",
                                               "x-slack-signature", "x-hub-signature-256",
                                               "x-hub-signature", "x-signature-ed25519",
                                               "x-telegram-bot-api-secret-token"};
    if (source.kind == SourceKind::kHmac && !source.scheme.header.empty()) {
      secret_headers.push_back(AsciiLower(source.scheme.header));
    }
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string path = s.KeyPath("headers") + "[" + std::to_string(i) + "]";
      if (!IsHeaderName(names[i])) {
        problems_.Add(s.ElementSource("headers", i), path, "bad header name " + Quote(names[i]));
        return;
      }
      const std::string lower = AsciiLower(names[i]);
      if (std::find(secret_headers.begin(), secret_headers.end(), lower) !=
          secret_headers.end()) {
        problems_.Add(s.ElementSource("headers", i), path,
                      Quote(names[i]) +
                          " carries a signature or credential; handlers never get those");
        return;
      }
      const bool known = std::any_of(source.headers.begin(), source.headers.end(),
                                     [&](const std::string& h) { return AsciiLower(h) == lower; });
      if (!known) source.headers.push_back(names[i]);
    }
  }

  // search_keys = ["/data/object/customer", ...]: JSON pointers into the payload whose
  // values a job is found by, named "data.object.customer" (any kind). They replace a
  // preset's defaults (`[]`: none) and add to a platform kind's own keys.
  void ParseSearchKeys(Section& s, SourceConfig& source) {
    std::vector<std::string> pointers;
    if (!s.StringList("search_keys", pointers, false)) return;
    if (pointers.size() > kMaxSearchKeys) {
      s.Fail("search_keys", "at most " + std::to_string(kMaxSearchKeys) +
                                " pointers (a job keeps at most that many keys)");
      return;
    }
    for (size_t i = 0; i < pointers.size(); ++i) {
      const std::string& pointer = pointers[i];
      std::string problem = SearchKeyProblem(pointer, source.scheme.token_field);
      const auto earlier = pointers.begin() + static_cast<ptrdiff_t>(i);
      if (problem.empty() && std::find(pointers.begin(), earlier, pointer) != earlier) {
        problem = Quote(pointer) + " is listed twice";
      }
      if (!problem.empty()) {
        problems_.Add(s.ElementSource("search_keys", i),
                      s.KeyPath("search_keys") + "[" + std::to_string(i) + "]", problem);
        return;
      }
    }
    source.search_keys = std::move(pointers);
  }

  void ParseJob(Section& s) {
    JobConfig job;
    job.where = problems_.Where(s.source());
    if (s.String("type", job.type, Need::kRequired)) {
      if (std::string problem = CheckName(job.type, true); !problem.empty()) {
        s.Fail("type", problem);
      } else if (auto [it, inserted] = job_types_.emplace(job.type, job.where); !inserted) {
        s.Fail("type",
               "duplicate job type " + Quote(job.type) + " (first defined at " + it->second + ")");
      }
    }
    if (auto handler = s.Table("handler", Need::kRequired)) ParseHandler(*handler, job.handler);
    s.Int("concurrency", job.concurrency, 1);
    s.Int("global_concurrency", job.global_concurrency, 1);
    s.Duration("timeout", job.timeout);
    s.Int("max_attempts", job.max_attempts, 1);
    if (auto backoff = s.Table("backoff")) ParseBackoff(*backoff, job.backoff);
    if (auto debounce = s.Table("debounce")) ParseDebounce(*debounce, job);
    s.Bool("paused", job.paused);
    // `ordering` predates `key`: FIFO per key, one at a time.
    std::string ordering;
    const bool has_ordering = s.String("ordering", ordering) && !ordering.empty();
    if (has_ordering) {
      if (std::string problem = CheckJsonPointer(ordering); !problem.empty()) {
        s.Fail("ordering", problem);
      }
      job.key = ordering;
    }
    std::string key;
    if (s.String("key", key)) {
      if (has_ordering) {
        s.Fail("key", "give either key or ordering (ordering = key with concurrency_per_key = 1)");
      } else if (std::string problem = CheckJobKey(key); !problem.empty()) {
        s.Fail("key", problem);
      } else {
        job.key = key;
      }
    }
    if (s.String("priority_from", job.priority_from)) {
      if (job.priority_from.empty()) {
        s.Fail("priority_from", "must be a JSON pointer to the priority, e.g. \"/priority\"");
      } else if (std::string problem = CheckJsonPointer(job.priority_from); !problem.empty()) {
        s.Fail("priority_from", problem);
      }
    }
    s.Duration("priority_step", job.priority_step);
    if (s.Int("concurrency_per_key", job.concurrency_per_key, 1)) {
      if (has_ordering && job.concurrency_per_key != 1) {
        s.Fail("concurrency_per_key", "ordering runs one job per key at a time; use key = " +
                                          Quote(ordering) + " for more");
      } else if (!s.Has("key") && !has_ordering) {
        s.Fail("concurrency_per_key", "needs key (the JSON pointer or search key it counts by)");
      }
    }
    if (auto throttle = s.Table("throttle")) {
      ParseThrottle(*throttle, job);
      if (job.throttle_per_key > 0 && job.key.empty()) {
        s.Fail("throttle", "per_key needs key (the JSON pointer or search key it counts by)");
      }
    }
    if (auto batch = s.Table("batch")) ParseBatch(*batch, job.batch);
    s.RejectUnknownKeys();
    config_.jobs.push_back(std::move(job));
  }

  // throttle = { per_key = "5/10s" }: "<count>/<period>", the period a duration ("10s",
  // "500ms") or a bare unit ("s", "m", "h": one of it).
  void ParseThrottle(Section& s, JobConfig& job) {
    if (s.String("per_key", job.throttle_rate, Need::kRequired)) ParseThrottleRate(s, job);
    s.RejectUnknownKeys();
  }
  void ParseThrottleRate(Section& s, JobConfig& job) {
    const std::string& rate = job.throttle_rate;
    const size_t slash = rate.find('/');
    int count = 0;
    std::optional<milliseconds> period;
    if (slash != std::string::npos && slash > 0) {
      auto [end, error] = std::from_chars(rate.data(), rate.data() + slash, count);
      if (error != std::errc() || end != rate.data() + slash) count = 0;
      std::string unit = rate.substr(slash + 1);
      if (unit == "s" || unit == "m" || unit == "h") unit.insert(0, "1");
      period = ParseDuration(unit);
    }
    if (count <= 0 || !period || period->count() <= 0) {
      s.Fail("per_key", "bad throttle " + Quote(rate) +
                            " (use runs per period, e.g. \"5/10s\", \"1/s\", \"100/m\")");
    } else if (*period > std::chrono::hours(24)) {
      s.Fail("per_key", "the period must be at most 24h, got " + FormatDuration(*period));
    } else if (count > 10'000) {
      s.Fail("per_key", "at most 10000 runs per period, got " + std::to_string(count));
    } else {
      job.throttle_per_key = count;
      job.throttle_period = *period;
    }
  }

  // batch = { max = 50, wait = "1s" }: max is required, wait defaults to 1s. Held jobs
  // are in flight (leased) while their batch fills, so wait stays short.
  void ParseBatch(Section& s, BatchConfig& batch) {
    int max = 0;
    if (s.Int("max", max, 1, BatchConfig::kMaxJobs)) {
      batch.max = max;
    } else if (!s.Has("max")) {
      s.FailMissing("max", " (the most jobs per handler run, 1.." +
                               std::to_string(BatchConfig::kMaxJobs) + ")");
    }
    if (s.Duration("wait", batch.wait) && batch.wait > BatchConfig::kMaxWait) {
      s.Fail("wait", "must be at most " + FormatDuration(BatchConfig::kMaxWait) +
                         ": claimed jobs wait in the worker's memory while a batch fills, "
                         "and a crashed worker's jobs come back only after their lease "
                         "(wait + timeout + 5s)");
    }
    s.RejectUnknownKeys();
  }

  void ParseHandler(Section& s, HandlerConfig& handler) {
    const toml::node* command = s.Find("command");
    bool has_url = s.String("url", handler.url);
    if (command != nullptr) ParseCommand(s, *command, handler.command);
    if (has_url && !HasScheme(handler.url, {"http://", "https://"})) {
      s.Fail("url", "expected an http:// or https:// URL, got " + Quote(handler.url));
    }
    // Whether the file is there is checked when the handler is made (`firebreak check`).
    if (s.String("ca_file", handler.ca_file)) {
      if (handler.ca_file.empty()) {
        s.Fail("ca_file", "must not be empty (the path of a PEM file of CA certificates)");
      } else if (!s.Has("url")) {
        s.Fail("ca_file",
               "only goes with url (the CAs an https:// handler url is checked against)");
      } else if (HasScheme(handler.url, {"http://"})) {
        s.Fail("ca_file", "needs an https:// url, not " + Quote(handler.url));
      }
    }
    bool has_both = command != nullptr && s.Has("url");
    bool has_neither = command == nullptr && !s.Has("url");
    bool had_unknown_keys = s.RejectUnknownKeys();
    if (has_both) {
      problems_.Add(s.source(), s.path(),
                    "handler must have exactly one of command or url, not both");
    } else if (has_neither && !had_unknown_keys) {
      problems_.Add(s.source(), s.path(),
                    "handler must be { command = [\"program\", \"arg\", ...] } or "
                    "{ url = \"http://...\" }");
    }
  }

  void ParseCommand(Section& s, const toml::node& node, std::vector<std::string>& command) {
    const toml::array* array = node.as_array();
    if (array == nullptr) {
      s.FailType("command", "an array of strings", node);
      return;
    }
    if (array->empty()) {
      s.Fail("command", "must not be empty (e.g. [\"python3\", \"bots/echo.py\"])");
      return;
    }
    std::vector<std::string> words;
    for (size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      std::string element_path = s.KeyPath("command") + "[" + std::to_string(i) + "]";
      const auto* word = element.as_string();
      if (word == nullptr) {
        problems_.Add(element.source(), element_path,
                      std::string("expected a string, not ") + TypeName(element));
        return;
      }
      words.push_back(word->get());
    }
    if (words[0].empty()) {
      s.Fail("command", "the program (first element) must not be empty");
      return;
    }
    command = std::move(words);
  }

  void ParseDebounce(Section& s, JobConfig& job) {
    if (s.String("key", job.debounce_key, Need::kRequired)) {
      if (std::string problem = CheckJobKey(job.debounce_key); !problem.empty()) {
        s.Fail("key", problem);
      }
    }
    if (!s.Has("period")) {
      s.Fail("period", "is required: how long a job waits for a later one of its key, e.g. \"2s\"");
    } else if (s.Duration("period", job.debounce_period) &&
               job.debounce_period > std::chrono::hours(1)) {
      s.Fail("period", "must be at most 1h (a debounced job waits this long before it runs)");
    }
    s.RejectUnknownKeys();
  }

  void ParseBackoff(Section& s, BackoffPolicy& backoff) {
    s.Duration("base", backoff.base, /*allow_zero=*/true);
    s.Number("factor", backoff.factor, 1, 1000);
    s.Duration("max", backoff.max);
    std::string jitter;
    if (s.Choice("jitter", jitter, {"none", "full", "equal"}, "jitter")) {
      backoff.jitter = jitter == "none"   ? Jitter::kNone
                       : jitter == "full" ? Jitter::kFull
                                          : Jitter::kEqual;
    }
    if (backoff.max < backoff.base) {
      s.Fail(s.Has("max") ? "max" : "base", "backoff max (" + FormatDuration(backoff.max) +
                                                ") is below base (" + FormatDuration(backoff.base) +
                                                ")");
    }
    s.RejectUnknownKeys();
  }

  void ParseSchedule(Section& s) {
    ScheduleConfig schedule;
    schedule.where = problems_.Where(s.source());
    if (s.String("name", schedule.name, Need::kRequired)) {
      if (std::string problem = CheckName(schedule.name, false); !problem.empty()) {
        s.Fail("name", problem);
      } else if (auto [it, inserted] = schedule_names_.emplace(schedule.name, schedule.where);
                 !inserted) {
        s.Fail("name", "duplicate schedule name " + Quote(schedule.name) + " (first defined at " +
                           it->second + ")");
      }
    }
    s.String("time_zone", schedule.time_zone);
    if (s.String("cron", schedule.cron, Need::kRequired)) {
      Result<CronSchedule> cron = CronSchedule::Parse(schedule.cron, schedule.time_zone);
      if (!cron.ok()) {
        // A bad zone is the zone's fault when one was written.
        const bool zone = cron.status().message().starts_with("unknown time zone");
        s.Fail(zone && s.Has("time_zone") ? "time_zone" : "cron", cron.status().message());
      }
    }
    if (s.String("job", schedule.job, Need::kRequired)) {
      job_references_.push_back({s.KeySource("job"), s.KeyPath("job"), schedule.job});
    }
    if (const toml::node* node = s.Find("payload"); node != nullptr) {
      if (const toml::table* table = node->as_table()) {
        std::ostringstream json;
        json << toml::json_formatter{*table};
        schedule.payload_json = json.str();
      } else {
        s.FailType("payload", "a table (the job's JSON payload)", *node);
      }
    }
    std::string missed = "last";
    if (s.Choice("missed", missed, {"skip", "last", "all"}, "policy for missed ticks")) {
      schedule.missed = missed == "skip"   ? MissedTicks::kSkip
                        : missed == "all" ? MissedTicks::kAll
                                          : MissedTicks::kLast;
    }
    if (s.Duration("catch_up", schedule.catch_up, /*allow_zero=*/true) &&
        schedule.catch_up > config_.queue.dedupe_ttl) {
      // Past the dedupe window a tick's key is forgotten: two processes could both run it.
      s.Fail("catch_up", "must not exceed queue.dedupe_ttl (" +
                             FormatDuration(config_.queue.dedupe_ttl) +
                             "): a tick is enqueued once only while its key is remembered");
    }
    s.RejectUnknownKeys();
    config_.schedules.push_back(std::move(schedule));
  }

  void ParseIntegration(Section& s) {
    IntegrationConfig integration;
    integration.where = problems_.Where(s.source());
    if (s.String("name", integration.name, Need::kRequired)) {
      if (std::string problem = CheckName(integration.name, false); !problem.empty()) {
        s.Fail("name", problem);
      } else if (auto [it, inserted] =
                     integration_names_.emplace(integration.name, integration.where);
                 !inserted) {
        s.Fail("name", "duplicate integration name " + Quote(integration.name) +
                           " (first defined at " + it->second + ")");
      }
    }
    if (s.String("base_url", integration.base_url, Need::kRequired)) {
      std::string& url = integration.base_url;
      if (!HasScheme(url, {"http://", "https://"})) {
        s.Fail("base_url", "expected an http:// or https:// URL, got " + Quote(url));
      } else if (url.find_first_of("?# \t\r\n") != std::string::npos) {
        s.Fail("base_url", "must not contain a query, fragment or spaces");
      } else {
        // Action paths start with '/': keep exactly one slash between the two.
        while (url.back() == '/' && url.find("://") + 3 < url.size() - 1) url.pop_back();
      }
    }
    if (auto auth = s.Table("auth")) integration.auth = ParseAuth(*auth);
    s.Duration("timeout", integration.timeout);
    s.Int("max_concurrency", integration.max_concurrency, 1);
    s.Int("max_queue", integration.max_queue, 0);
    if (auto retry = s.Table("retry")) ParseRetry(*retry, integration.retry);
    if (auto breaker = s.Table("breaker")) ParseBreaker(*breaker, integration.breaker);
    if (const toml::node* node = s.Find("rate_limit"); node != nullptr && node->is_string()) {
      // Shorthand: rate_limit = "50/s" (burst 1).
      std::string rate = node->as_string()->get();
      if (std::optional<double> per_second = ParseRate(rate)) {
        integration.rate_limit = RateLimitConfig{rate, *per_second, 1};
      } else {
        s.Fail("rate_limit", "bad rate " + Quote(rate) +
                                 " (use e.g. \"50/s\", \"600/m\", \"1000/h\", or a table "
                                 "{ rate = \"50/s\", burst = 10 })");
      }
    } else if (auto rate_limit = s.Table("rate_limit")) {
      integration.rate_limit = ParseRateLimit(*rate_limit);
    }
    std::string limits = "shared";
    if (s.Choice("limits", limits, {"shared", "process"}, "limits mode")) {
      integration.limits = limits == "shared" ? IntegrationConfig::Limits::kShared
                                              : IntegrationConfig::Limits::kProcess;
    }
    if (s.Duration("shared_lease", integration.shared_lease) &&
        (integration.shared_lease < milliseconds(300) ||
         integration.shared_lease > milliseconds(600'000))) {
      s.Fail("shared_lease", "must be between 300ms and 10m, got " +
                                 FormatDuration(integration.shared_lease));
    }
    s.RejectUnknownKeys();
    config_.integrations.push_back(std::move(integration));
  }

  std::optional<IntegrationAuth> ParseAuth(Section& s) {
    IntegrationAuth auth;
    bool has_bearer = s.Has("bearer");
    bool has_header = s.Has("header");
    bool has_path = s.Has("path");
    std::optional<Secret> secret;
    if (has_bearer) {
      auth.kind = IntegrationAuth::Kind::kBearer;
      secret = s.SecretRef("bearer");
    }
    if (has_header) {
      auth.kind = IntegrationAuth::Kind::kHeader;
      if (auto header = s.Table("header")) {
        if (header->String("name", auth.header_name, Need::kRequired) &&
            !IsHeaderName(auth.header_name)) {
          header->Fail("name", "bad header name " + Quote(auth.header_name));
        }
        secret = header->SecretRef("value", Need::kRequired);
        header->RejectUnknownKeys();
      }
    }
    if (has_path) {
      auth.kind = IntegrationAuth::Kind::kPath;
      if (auto path = s.Table("path")) {
        // "/bot" or "" (the secret is the first path segment); never a query or fragment.
        if (path->String("prefix", auth.path_prefix) && !auth.path_prefix.empty() &&
            (auth.path_prefix.front() != '/' ||
             auth.path_prefix.find_first_of("?# ") != std::string::npos)) {
          path->Fail("prefix", "must start with '/' and hold no '?', '#' or space, got " +
                                   Quote(auth.path_prefix));
        }
        secret = path->SecretRef("value", Need::kRequired);
        path->RejectUnknownKeys();
      }
    }
    bool had_unknown_keys = s.RejectUnknownKeys();
    const int kinds = int{has_bearer} + int{has_header} + int{has_path};
    if (kinds == 0 && had_unknown_keys) return std::nullopt;
    if (kinds != 1) {
      problems_.Add(s.source(), s.path(),
                    std::string("auth must have exactly one of bearer, header or path") +
                        (kinds > 1 ? ", not several"
                                   : ": { bearer = { env = \"...\" } }, "
                                     "{ header = { name = \"X-Api-Key\", "
                                     "value = { env = \"...\" } } } or "
                                     "{ path = { prefix = \"/bot\", value = { env = \"...\" } } }"));
      return std::nullopt;
    }
    if (!secret) return std::nullopt;
    auth.secret = std::move(*secret);
    return auth;
  }

  void ParseRetry(Section& s, IntegrationRetryConfig& retry) {
    s.Int("attempts", retry.attempts, 1, 100);
    s.Bool("jitter", retry.jitter);
    if (const toml::node* node = s.Find("backoff")) {
      const toml::array* array = node->as_array();
      if (array == nullptr) {
        s.FailType("backoff", "an array of durations (e.g. [\"250ms\", \"1s\"])", *node);
      } else if (array->empty()) {
        s.Fail("backoff", "must list at least one duration (e.g. [\"250ms\", \"1s\"])");
      } else {
        std::vector<milliseconds> delays;
        for (size_t i = 0; i < array->size(); ++i) {
          const toml::node& element = *array->get(i);
          std::string element_path = s.KeyPath("backoff") + "[" + std::to_string(i) + "]";
          const auto* text = element.as_string();
          std::optional<milliseconds> delay;
          if (text == nullptr) {
            problems_.Add(element.source(), element_path,
                          std::string("expected a string (a duration such as \"1s\"), not ") +
                              TypeName(element));
          } else if (!(delay = ParseDuration(text->get()))) {
            problems_.Add(element.source(), element_path,
                          "bad duration " + Quote(text->get()) +
                              " (use e.g. \"250ms\", \"5s\", \"2m\", \"24h\")");
          } else {
            delays.push_back(*delay);
          }
        }
        if (delays.size() == array->size()) retry.backoff = std::move(delays);
      }
    }
    s.RejectUnknownKeys();
  }

  void ParseBreaker(Section& s, CircuitBreakerConfig& breaker) {
    s.Number("failure_rate", breaker.failure_rate, 0, 1, /*min_exclusive=*/true);
    s.Int("min_calls", breaker.min_calls, 1);
    s.Duration("window", breaker.window);
    s.Duration("open_for", breaker.open_for);
    s.RejectUnknownKeys();
  }

  std::optional<RateLimitConfig> ParseRateLimit(Section& s) {
    RateLimitConfig limit;
    bool valid = false;
    if (s.String("rate", limit.rate, Need::kRequired)) {
      std::optional<double> per_second = ParseRate(limit.rate);
      if (!per_second) {
        s.Fail("rate", "bad rate " + Quote(limit.rate) +
                           " (use e.g. \"50/s\", \"600/m\", "
                           "\"1000/h\")");
      } else {
        limit.per_second = *per_second;
        valid = true;
      }
    }
    if (!s.Int("burst", limit.burst, 1) && s.Has("burst")) valid = false;
    s.RejectUnknownKeys();
    if (!valid) return std::nullopt;
    return limit;
  }

  // "<number>/<s|m|h>" → events per second.
  static std::optional<double> ParseRate(std::string_view text) {
    size_t slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0) return std::nullopt;
    std::string_view number_text = text.substr(0, slash);
    std::string_view unit = text.substr(slash + 1);
    if (!std::all_of(number_text.begin(), number_text.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
        })) {
      return std::nullopt;
    }
    double number = 0;
    auto [end, error] =
        std::from_chars(number_text.data(), number_text.data() + number_text.size(), number);
    if (error != std::errc() || end != number_text.data() + number_text.size()) {
      return std::nullopt;
    }
    if (!(number > 0) || !std::isfinite(number)) return std::nullopt;
    if (unit == "s") return number;
    if (unit == "m") return number / 60;
    if (unit == "h") return number / 3600;
    return std::nullopt;
  }

  void ParseTelemetry(Section& s) {
    TelemetryConfig& telemetry = config_.telemetry;
    s.Choice("log_format", telemetry.log_format, {"json", "text"}, "log format");
    s.Choice("log_level", telemetry.log_level, {"trace", "debug", "info", "warn", "error"},
             "log level");
    if (s.String("otlp_endpoint", telemetry.otlp_endpoint) && !telemetry.otlp_endpoint.empty() &&
        !HasScheme(telemetry.otlp_endpoint, {"http://", "https://"})) {
      s.Fail("otlp_endpoint",
             "expected \"\" or an http:// or https:// URL, e.g. "
             "\"http://127.0.0.1:4318\"");
    }
    if (s.String("service_name", telemetry.service_name) && telemetry.service_name.empty()) {
      s.Fail("service_name", "must not be empty");
    }
    s.RejectUnknownKeys();
  }

  void CheckJobReferences() {
    std::vector<std::string> types;
    for (const JobConfig& job : config_.jobs) types.push_back(job.type);
    for (const JobReference& reference : job_references_) {
      if (config_.FindJob(reference.job_type) != nullptr) continue;
      std::string hint =
          types.empty() ? " (no [[jobs]] are defined)" : DidYouMean(reference.job_type, types);
      problems_.Add(reference.at, reference.key_path,
                    "undefined job type " + Quote(reference.job_type) + hint);
    }
  }

  std::map<std::string, std::string> schedule_names_;  // name -> where
  Problems problems_;
  Section root_;
  Config config_;
  std::map<std::string, std::string> source_names_;       // name → where
  std::map<std::string, std::string> source_paths_;       // path → source name
  std::map<std::string, std::string> job_types_;          // type → where
  std::map<std::string, std::string> integration_names_;  // name → where
  std::map<std::string, std::string> admin_token_names_;  // name → where
  toml::source_region admin_listen_at_;                   // the key, or [server]
  std::vector<JobReference> job_references_;
};

}  // namespace

const char* SourceKindName(SourceKind kind) {
  switch (kind) {
    case SourceKind::kSlack:
      return "slack";
    case SourceKind::kDiscord:
      return "discord";
    case SourceKind::kTelegram:
      return "telegram";
    case SourceKind::kGithub:
      return "github";
    case SourceKind::kMeta:
      return "meta";
    case SourceKind::kHmac:
      return "hmac";
  }
  return "unknown";
}

const char* AdminScopeName(AdminScope scope) {
  switch (scope) {
    case AdminScope::kRead:
      return "read";
    case AdminScope::kOperate:
      return "operate";
    case AdminScope::kAdmin:
      return "admin";
  }
  return "admin";
}

const JobConfig* Config::FindJob(const std::string& type) const {
  for (const JobConfig& job : jobs) {
    if (job.type == type) return &job;
  }
  return nullptr;
}

std::string SourceConfig::KindName() const {
  return preset != nullptr ? preset->name : SourceKindName(kind);
}

const SourceConfig* Config::FindSource(const std::string& name) const {
  for (const SourceConfig& source : sources) {
    if (source.name == name) return &source;
  }
  return nullptr;
}

const IntegrationConfig* Config::FindIntegration(const std::string& name) const {
  for (const IntegrationConfig& integration : integrations) {
    if (integration.name == name) return &integration;
  }
  return nullptr;
}

Result<std::pair<std::string, uint16_t>> ParseListenAddress(std::string_view address,
                                                         bool allow_port_zero) {
  auto bad = [address](std::string_view why) {
    return InvalidArgument("bad address " + Quote(address) + ": " + std::string(why));
  };
  std::string host;
  std::string_view port_text;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after the IPv6 address");
    host = std::string(address.substr(1, close - 1));
    if (host.empty()) return bad("empty host");
    if (close + 1 >= address.size() || address[close + 1] != ':') {
      return bad("expected \"[address]:port\", e.g. \"[::1]:8080\"");
    }
    port_text = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) {
      return bad("expected \"host:port\", e.g. \"127.0.0.1:8080\"");
    }
    host = std::string(address.substr(0, colon));
    if (host.find(':') != std::string::npos) {
      return bad("put an IPv6 address in brackets, e.g. \"[::1]:8080\"");
    }
    if (host.empty()) return bad("empty host (use 0.0.0.0 for every interface)");
    port_text = address.substr(colon + 1);
  }
  if (host.find_first_of(" \t\r\n/[]") != std::string::npos) return bad("bad host");
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("the port must be a number from 1 to 65535");
  }
  int port = std::stoi(std::string(port_text));
  if ((port < 1 && !(allow_port_zero && port == 0)) || port > 65535) {
    return bad(allow_port_zero ? "the port must be a number from 0 (any free port) to 65535"
                               : "the port must be a number from 1 to 65535");
  }
  return std::make_pair(std::move(host), static_cast<uint16_t>(port));
}

bool IsLoopbackAddress(std::string_view host) {
  return host == "localhost" || host == "::1" || host.substr(0, 4) == "127.";
}

Result<Config> ParseConfig(std::string_view text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& error) {
    const toml::source_position& at = error.source().begin;
    return InvalidArgument(path + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                           ": " + std::string(error.description()));
  }
  return ConfigParser(root, path).Run();
}

Result<Config> LoadConfig(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return InvalidArgument(path + ": cannot read: " + std::strerror(errno));
  std::string text;
  char buffer[64 * 1024];
  int read_error = 0;
  while (true) {
    size_t got = std::fread(buffer, 1, sizeof buffer, file);
    text.append(buffer, got);
    if (got < sizeof buffer) {
      if (std::ferror(file)) read_error = errno != 0 ? errno : EIO;
      break;
    }
    if (text.size() > kMaxConfigBytes) break;
  }
  std::fclose(file);
  if (read_error != 0) return InvalidArgument(path + ": cannot read: " + std::strerror(read_error));
  if (text.size() > kMaxConfigBytes) {
    return InvalidArgument(path + ": cannot read: larger than " +
                           std::to_string(kMaxConfigBytes / (1024 * 1024)) +
                           " MiB, not a config file");
  }
  return ParseConfig(text, path);
}

}  // namespace firebreak

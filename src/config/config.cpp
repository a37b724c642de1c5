#include "config/config.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "auth/sasl/exchange.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"
#include "config/parameters.hpp"

namespace postern::config {
namespace {

constexpr int kMaxExpansionDepth = 50;
constexpr size_t kMaxExpansionBytes = 1 << 16;

bool is_comment_or_blank(std::string_view line) {
  std::string_view t = trim(line);
  return t.empty() || t.front() == '#';
}

bool starts_with_space(std::string_view line) {
  return !line.empty() && (line[0] == ' ' || line[0] == '\t');
}

bool valid_key(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/')) return false;
  return true;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return to_lower(buf);
}

}  // namespace

Result<std::vector<Entry>> parse_main_cf(std::string_view text, std::string_view filename) {
  std::vector<Entry> entries;
  auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (is_comment_or_blank(line)) continue;
    int lineno = static_cast<int>(i) + 1;
    if (starts_with_space(line))
      return Error{
          fmt::format("{}, line {}: continuation line without a parameter before it", filename, lineno)};
    size_t eq = line.find('=');
    if (eq == std::string_view::npos)
      return Error{
          fmt::format("{}, line {}: missing '=' after \"{}\"", filename, lineno, printable(trim(line)))};
    std::string key(trim(line.substr(0, eq)));
    if (!valid_key(key))
      return Error{fmt::format("{}, line {}: bad parameter name \"{}\"", filename, lineno, printable(key))};
    std::string value(trim(line.substr(eq + 1)));
    while (i + 1 < lines.size() && (starts_with_space(lines[i + 1]) || is_comment_or_blank(lines[i + 1]))) {
      ++i;
      if (is_comment_or_blank(lines[i])) continue;
      std::string_view more = trim(lines[i]);
      if (!value.empty()) value += ' ';
      value += more;
    }
    entries.push_back(Entry{std::move(key), std::move(value), lineno});
  }
  return entries;
}

std::string edit_main_cf(std::string_view text, std::string_view key, std::string_view value) {
  auto lines = split_lines(text);
  std::string replacement = value.empty() ? fmt::format("{} =", key) : fmt::format("{} = {}", key, value);
  std::string out;
  bool replaced = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    bool is_entry = !is_comment_or_blank(line) && !starts_with_space(line);
    if (is_entry) {
      size_t eq = line.find('=');
      if (eq != std::string_view::npos && trim(line.substr(0, eq)) == key) {
        if (!replaced) {
          out += replacement;
          out += '\n';
          replaced = true;
        }
        // Drop the entry's continuation lines; comment and blank lines among them stay.
        while (i + 1 < lines.size() &&
               (starts_with_space(lines[i + 1]) || is_comment_or_blank(lines[i + 1]))) {
          ++i;
          if (is_comment_or_blank(lines[i])) {
            out += lines[i];
            out += '\n';
          }
        }
        continue;
      }
    }
    out += line;
    out += '\n';
  }
  if (!replaced) {
    out += replacement;
    out += '\n';
  }
  return out;
}

bool parse_time(std::string_view s, long long& seconds) {
  if (s.empty()) return false;
  long long mult = 1;
  char unit = s.back();
  if (!(unit >= '0' && unit <= '9')) {
    switch (ascii_lower(unit)) {
      case 's':
        mult = 1;
        break;
      case 'm':
        mult = 60;
        break;
      case 'h':
        mult = 3600;
        break;
      case 'd':
        mult = 86400;
        break;
      case 'w':
        mult = 604800;
        break;
      default:
        return false;
    }
    s.remove_suffix(1);
  }
  unsigned long long n = 0;
  if (!parse_u64(s, n) || n > (1ULL << 40)) return false;
  seconds = static_cast<long long>(n) * mult;
  return true;
}

Result<Config> Config::load(const std::string& dir, bool allow_missing) {
  std::string file = dir + "/main.cf";
  if (allow_missing && ::access(file.c_str(), F_OK) != 0) return from_text(dir, "", file);
  auto text = read_file(file);
  if (!text) return text.error();
  return from_text(dir, *text, file);
}

Result<Config> Config::from_text(const std::string& dir, std::string_view text, std::string_view filename) {
  auto parsed = parse_main_cf(text, filename);
  if (!parsed) return parsed.error();
  Config c;
  c.dir_ = dir;
  c.file_ = std::string(filename);
  for (auto& e : *parsed) {
    std::string_view name = e.key;
    size_t slash = name.find('/');
    if (slash != std::string_view::npos) {
      if (!is_service_name(name.substr(0, slash)))
        return Error{fmt::format("{}, line {}: unknown service \"{}\" in \"{}\"", filename, e.line,
                                 name.substr(0, slash), name)};
      name = name.substr(slash + 1);
    }
    if (!find_parameter(name))
      return Error{fmt::format("{}, line {}: unknown parameter \"{}\"", filename, e.line, printable(name))};
    c.values_[e.key] = e;
  }
  c.computed_["myhostname"] = host_name();
  std::string host = c.get("myhostname");
  size_t dot = host.find('.');
  c.computed_["mydomain"] = dot == std::string::npos ? "localdomain" : host.substr(dot + 1);
  if (auto st = c.validate(); !st) return st.error();
  return c;
}

Status Config::validate() const {
  for (const auto& kv : values_) {
    const std::string& key =
        kv.first;  // not a structured binding: clang 14 (fuzz build) cannot capture those
    const Entry& entry = kv.second;
    std::string_view name = key;
    std::string_view service;
    if (size_t slash = name.find('/'); slash != std::string_view::npos) {
      service = name.substr(0, slash);
      name = name.substr(slash + 1);
    }
    const Parameter* p = find_parameter(name);
    std::string v = get(name, service);
    auto bad = [&](std::string_view what) -> Status {
      return Error{
          fmt::format("{}, line {}: {}: bad value \"{}\": {}", file_, entry.line, key, printable(v), what)};
    };
    unsigned long long n;
    long long secs;
    switch (p->type) {
      case Type::kBool:
        if (v != "yes" && v != "no") return bad("expected yes or no");
        break;
      case Type::kInt:
      case Type::kSize:
        if (!parse_u64(v, n) || n > (1ULL << 62)) return bad("expected a non-negative number");
        break;
      case Type::kTime:
        if (!parse_time(v, secs)) return bad("expected a time such as 300s, 10m, 1h, 5d");
        break;
      case Type::kString:
      case Type::kList:
        break;
    }
    if (name == "auth_mechanisms")
      for (const auto& m : get_list(name, service))
        if (!auth::sasl::known_mechanism(m))
          return bad("unknown mechanism " + m +
                     " (plain, login, cram-md5, scram-sha-256, scram-sha-256-plus)");
    if (name == "home_mailbox" && (v.empty() || v.back() != '/' || v.front() == '/'))
      return bad("Postern delivers to Maildir only: a path relative to the home directory ending in /");
  }
  return Ok{};
}

std::string Config::raw(std::string_view name) const {
  auto it = values_.find(std::string(name));
  if (it != values_.end()) return it->second.value;
  return default_value(name);
}

std::string Config::default_value(std::string_view name) const {
  const Parameter* p = find_parameter(name);
  if (!p) return {};
  if (!p->default_value.empty() && p->default_value[0] == '!') {
    auto it = computed_.find(p->default_value.substr(1));
    return it == computed_.end() ? std::string() : it->second;
  }
  return std::string(p->default_value);
}

std::string Config::expand(std::string_view text, int depth, size_t& budget) const {
  if (depth > kMaxExpansionDepth || budget == 0) return std::string();
  std::string out;
  for (size_t i = 0; i < text.size() && budget > 0; ++i) {
    if (text[i] != '$' || i + 1 >= text.size()) {
      out += text[i];
      --budget;
      continue;
    }
    std::string name;
    std::string alt;
    char alt_kind = 0;  // '?': value if name is non-empty; ':': value if name is empty
    char open = text[i + 1];
    if (open == '{' || open == '(') {
      char close = open == '{' ? '}' : ')';
      size_t end = text.find(close, i + 2);
      if (end == std::string_view::npos) {
        out += text.substr(i);
        budget -= std::min(budget, text.size() - i);
        break;
      }
      std::string_view inner = text.substr(i + 2, end - i - 2);
      size_t op = inner.find_first_of("?:");
      if (op != std::string_view::npos) {
        alt_kind = inner[op];
        alt = std::string(inner.substr(op + 1));
        inner = inner.substr(0, op);
      }
      name = inner;
      i = end;
    } else {
      size_t j = i + 1;
      while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_')) ++j;
      if (j == i + 1) {
        out += '$';
        --budget;
        continue;
      }
      name = text.substr(i + 1, j - i - 1);
      i = j - 1;
    }
    --budget;  // each reference costs: "$x = $x$x" expands to nothing, but 2^depth times
    std::string value = find_parameter(name) ? expand(raw(name), depth + 1, budget) : std::string();
    if (alt_kind == '?') {
      out += value.empty() ? std::string() : expand(alt, depth + 1, budget);
    } else if (alt_kind == ':') {
      out += value.empty() ? expand(alt, depth + 1, budget) : std::string();
    } else {
      out += value;
    }
  }
  return out;
}

std::string Config::get(std::string_view name, std::string_view service) const {
  if (!service.empty()) {
    auto it = values_.find(fmt::format("{}/{}", service, name));
    size_t budget = kMaxExpansionBytes;
    if (it != values_.end()) return expand(it->second.value, 0, budget);
    if (auto d = service_default(service, name)) return expand(*d, 0, budget);
  }
  size_t budget = kMaxExpansionBytes;
  return expand(raw(name), 0, budget);
}

bool Config::get_bool(std::string_view name, std::string_view service) const {
  return get(name, service) == "yes";
}

long long Config::get_int(std::string_view name, std::string_view service) const {
  std::string v = get(name, service);
  const Parameter* p = find_parameter(name);
  long long out = 0;
  if (p && p->type == Type::kTime) {
    parse_time(v, out);
    return out;
  }
  unsigned long long n = 0;
  parse_u64(v, n);
  return static_cast<long long>(n);
}

std::vector<std::string> Config::get_list(std::string_view name, std::string_view service) const {
  return split_list(get(name, service));
}

std::string Config::get_path(std::string_view name) const {
  std::string v = get(name);
  if (v.empty() || v[0] == '/') return v;
  return dir_ + "/" + v;
}

}  // namespace postern::config

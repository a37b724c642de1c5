// config/config.hpp: main.cf in Postfix syntax: parsing, $name expansion, typed access, in-place editing.
// Untrusted input: no (the administrator's file), but every error names file, line and key.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace postern::config {

// One "key = value" logical line of main.cf (continuations joined by single spaces).
struct Entry {
  std::string key;
  std::string value;
  int line = 0;
};

// Parses main.cf text. `filename` is only used in error messages.
Result<std::vector<Entry>> parse_main_cf(std::string_view text, std::string_view filename);

// Returns `text` with "key = value" set: replaces the key's logical line (with its continuations) in place,
// or appends it; comments and the order of everything else are kept. An empty `value` still sets the key.
std::string edit_main_cf(std::string_view text, std::string_view key, std::string_view value);

// Parses a Postfix time value ("300s", "5d", "10"): seconds, or false.
bool parse_time(std::string_view s, long long& seconds);

class Config {
 public:
  // Reads DIR/main.cf. A missing main.cf is an error unless `allow_missing` (then every default applies).
  static Result<Config> load(const std::string& dir, bool allow_missing = false);
  static Result<Config> from_text(const std::string& dir, std::string_view text, std::string_view filename);

  const std::string& dir() const { return dir_; }
  const std::string& file() const { return file_; }

  // The expanded value; `service` picks a "SERVICE/name" override when one is set.
  std::string get(std::string_view name, std::string_view service = {}) const;
  bool get_bool(std::string_view name, std::string_view service = {}) const;
  long long get_int(std::string_view name, std::string_view service = {}) const;  // kInt, kSize, kTime (s)
  std::vector<std::string> get_list(std::string_view name, std::string_view service = {}) const;
  // A path setting made absolute: relative paths are relative to the configuration directory.
  std::string get_path(std::string_view name) const;

  // The unexpanded value as written in main.cf, or the default.
  std::string raw(std::string_view name) const;
  std::string default_value(std::string_view name) const;
  bool is_set(std::string_view name) const { return values_.count(std::string(name)) > 0; }
  const std::map<std::string, Entry>& entries() const { return values_; }

 private:
  // `budget`: bytes the whole expansion may still produce ($a = $b$b, $b = $c$c, ... grows exponentially).
  std::string expand(std::string_view text, int depth, size_t& budget) const;
  Status validate() const;

  std::string dir_;
  std::string file_;
  std::map<std::string, Entry> values_;  // set in main.cf, by key (including SERVICE/key overrides)
  std::map<std::string, std::string, std::less<>> computed_;  // run-time defaults (myhostname, mydomain)
};

}  // namespace postern::config

// delivery/aliases.hpp: alias tables in /etc/aliases format ("name: target, target", continuation lines
// start with white space, '#' comments), read as text and reloaded when the file changes. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/files.hpp"

namespace postern::delivery {

// Parses aliases text into lower-case name -> targets.
std::map<std::string, std::vector<std::string>> parse_aliases(std::string_view text);

class AliasTable {
 public:
  explicit AliasTable(std::string path) : path_(std::move(path)) {}
  std::optional<std::vector<std::string>> find(std::string_view name);

 private:
  std::string path_;
  std::mutex mutex_;
  FileVersion version_;
  std::map<std::string, std::vector<std::string>> table_;
};

}  // namespace postern::delivery

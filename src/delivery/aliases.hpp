// delivery/aliases.hpp: alias tables, read as text and reloaded when the file changes. Thread-safe.
// Two formats: /etc/aliases ("name: target, target") for alias_maps, and Postfix's virtual(5)
// ("user@domain target, target", "@domain target") for virtual_alias_maps. In both, continuation lines start
// with white space and '#' starts a comment line.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/files.hpp"

namespace postern::delivery {

enum class TableFormat { kAliases, kVirtual };

// Parses table text into lower-case key -> targets.
std::map<std::string, std::vector<std::string>> parse_aliases(std::string_view text,
                                                              TableFormat format = TableFormat::kAliases);

// The file of a table setting: "PATH", or "hash:PATH" and the other indexed types, whose text source is read
// (Postfix's postmap input). Empty for a type that has no text file (ldap:, mysql:, ...).
std::string table_path(std::string_view map);

class AliasTable {
 public:
  AliasTable(std::string path, TableFormat format) : path_(std::move(path)), format_(format) {}
  std::optional<std::vector<std::string>> find(std::string_view name);

 private:
  std::string path_;
  TableFormat format_;
  std::mutex mutex_;
  FileVersion version_;
  std::map<std::string, std::vector<std::string>> table_;
};

}  // namespace postern::delivery

#include "delivery/aliases.hpp"

#include "base/files.hpp"
#include "base/strings.hpp"

namespace postern::delivery {

std::string table_path(std::string_view map) {
  size_t colon = map.find(':');
  if (colon == std::string_view::npos) return std::string(map);
  std::string_view type = map.substr(0, colon);
  if (type == "hash" || type == "btree" || type == "lmdb" || type == "texthash" || type == "cdb")
    return std::string(map.substr(colon + 1));
  return {};
}

std::map<std::string, std::vector<std::string>> parse_aliases(std::string_view text, TableFormat format) {
  // aliases(5) targets are comma-separated (a target may hold spaces in quotes); virtual(5) also splits on
  // white space.
  std::string_view separators = format == TableFormat::kAliases ? "," : ", \t";
  std::map<std::string, std::vector<std::string>> table;
  std::string name, value;
  auto flush = [&] {
    if (!name.empty()) {
      std::vector<std::string> targets;
      for (auto& t : split_list(value, separators)) {
        std::string_view v = trim(t);
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        if (!v.empty()) targets.emplace_back(v);
      }
      table[to_lower(name)] = std::move(targets);
    }
    name.clear();
    value.clear();
  };
  for (std::string_view line : split_lines(text)) {
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    if (line.front() == ' ' || line.front() == '\t') {
      if (!name.empty()) value += " " + std::string(t);
      continue;
    }
    flush();
    size_t end = format == TableFormat::kAliases ? t.find(':') : t.find_first_of(" \t");
    if (end == std::string_view::npos) continue;
    std::string_view n = trim(t.substr(0, end));
    if (n.size() >= 2 && n.front() == '"' && n.back() == '"') n = n.substr(1, n.size() - 2);
    name = n;
    value = trim(t.substr(end + 1));
  }
  flush();
  return table;
}

std::optional<std::vector<std::string>> AliasTable::find(std::string_view name) {
  std::lock_guard lock(mutex_);
  bool exists = false;
  if (version_.changed(path_, exists)) {
    auto text = read_file(path_);
    table_ = text ? parse_aliases(*text, format_) : std::map<std::string, std::vector<std::string>>{};
  }
  if (!exists) table_.clear();
  auto it = table_.find(to_lower(name));
  if (it == table_.end()) return std::nullopt;
  return it->second;
}

}  // namespace postern::delivery

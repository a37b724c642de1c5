// imap/proto/metadata.cpp: METADATA entry names, command arguments and the metadata file codec (RFC 5464);
// see metadata.hpp.
// Security: untrusted input (commands, and files on disk); every read is bounded by its input.

#include "imap/proto/metadata.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "base/strings.hpp"
#include "imap/proto/writer.hpp"

namespace postern::imap::proto {
namespace {

constexpr std::string_view kFileHeader = "postern-metadata 1\n";
constexpr size_t kMaxSizeDigits = 20;

bool starts_with_namespace(std::string_view lower) {
  for (std::string_view ns : {"/private", "/shared"})
    if (lower.substr(0, ns.size()) == ns && (lower.size() == ns.size() || lower[ns.size()] == '/'))
      return true;
  return false;
}

std::optional<uint64_t> number(const Token& t) {
  unsigned long long n = 0;
  if (!t.is_atom() || t.value.empty() || t.value.size() > kMaxSizeDigits ||
      !std::all_of(t.value.begin(), t.value.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !parse_u64(t.value, n))
    return std::nullopt;
  return n;
}

// Reads the options list of GETMETADATA into `args`; an error text, or empty.
std::string getmetadata_options(const Token& list, GetMetadataArgs& args) {
  const auto& items = list.items;
  if (items.empty()) return "Empty GETMETADATA options";
  for (size_t i = 0; i < items.size(); i += 2) {
    if (!items[i].is_atom() || i + 1 >= items.size()) return "Invalid GETMETADATA options";
    const Token& value = items[i + 1];
    if (iequals(items[i].value, "MAXSIZE")) {
      args.maxsize = number(value);
      if (!args.maxsize) return "Invalid value for MAXSIZE option";
    } else if (iequals(items[i].value, "DEPTH")) {
      if (value.is_atom() && value.value == "0") {
        args.depth = MetadataDepth::kZero;
      } else if (value.is_atom() && value.value == "1") {
        args.depth = MetadataDepth::kOne;
      } else if (value.is_atom() && iequals(value.value, "infinity")) {
        args.depth = MetadataDepth::kInfinity;
      } else {
        return "Invalid value for DEPTH option";
      }
    } else {
      return "Unknown GETMETADATA option";
    }
  }
  return {};
}

// An entry-name argument: an astring holding a valid name.
Result<std::string> entry_argument(const Token& t) {
  if (t.is_list()) return Error{"Entry name isn't astring"};
  return metadata_entry_name(t.text());
}

}  // namespace

Result<std::string> metadata_entry_name(std::string_view name) {
  if (name.empty() || name[0] != '/') return Error{"Entry name must begin with '/'"};
  if (name.size() > kMaxEntryName) return Error{"Entry name too long"};
  for (size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (c == '*' || c == '%') return Error{"Entry name can't contain '*' or '%'"};
    if (c < 0x20 || c > 0x7e) return Error{"Entry name must be printable ASCII"};
    if (c == '/' && i + 1 < name.size() && name[i + 1] == '/')
      return Error{"Entry name can't contain consecutive '/'"};
  }
  if (name.size() > 1 && name.back() == '/') return Error{"Entry name can't end with '/'"};
  std::string lower = to_lower(name);
  if (!starts_with_namespace(lower)) return Error{"Entry name must begin with /private or /shared"};
  return lower;
}

Result<GetMetadataArgs> parse_getmetadata(const Command& c) {
  GetMetadataArgs args;
  size_t i = 0;
  if (!c.args.empty() && c.args[0].is_list()) {
    if (std::string e = getmetadata_options(c.args[0], args); !e.empty()) return Error{e};
    i = 1;
  }
  if (c.args.size() != i + 2 || !c.args[i].is_astring()) return Error{"Invalid arguments."};
  args.mailbox = &c.args[i];
  const Token& entries = c.args[i + 1];
  std::vector<const Token*> names;
  if (entries.is_list()) {
    if (entries.items.empty()) return Error{"Missing entry names"};
    for (const Token& t : entries.items) names.push_back(&t);
  } else {
    names.push_back(&entries);
  }
  for (const Token* t : names) {
    Result<std::string> name = entry_argument(*t);
    if (!name) return name.error();
    args.entries.push_back(std::move(*name));
  }
  return args;
}

Result<SetMetadataArgs> parse_setmetadata(const Command& c) {
  if (c.args.size() != 2 || !c.args[0].is_astring() || !c.args[1].is_list())
    return Error{"Invalid arguments."};
  const auto& items = c.args[1].items;
  if (items.empty()) return Error{"Missing entries"};
  if (items.size() % 2 != 0) return Error{"Entry value missing"};
  SetMetadataArgs args;
  args.mailbox = &c.args[0];
  for (size_t i = 0; i < items.size(); i += 2) {
    Result<std::string> name = entry_argument(items[i]);
    if (!name) return name.error();
    const Token& value = items[i + 1];
    if (value.is_list()) return Error{"Entry value can't be a list"};
    std::optional<std::string> v;
    if (value.type != Token::Type::kNil) v = value.value;
    args.entries.emplace_back(std::move(*name), std::move(v));
  }
  return args;
}

std::vector<std::string> metadata_below(const MetadataEntries& entries, std::string_view name,
                                        MetadataDepth depth) {
  std::vector<std::string> out;
  if (depth == MetadataDepth::kZero) return out;
  std::string prefix = std::string(name) + "/";
  for (auto it = entries.lower_bound(prefix); it != entries.end(); ++it) {
    std::string_view n = it->first;
    if (n.substr(0, prefix.size()) != prefix) break;
    if (depth == MetadataDepth::kOne && n.find('/', prefix.size()) != std::string_view::npos) continue;
    out.push_back(it->first);
  }
  return out;
}

void append_metadata_value(std::string& out, std::string_view value) {
  if (value.find('\0') != std::string_view::npos) return append_literal8(out, value);
  append_string(out, value);
}

MetadataFile decode_metadata_file(std::string_view text, size_t max_entries) {
  MetadataFile file;
  if (text.empty()) return file;
  auto fail = [&](std::string why, size_t at) {
    file.damaged = true;
    file.error = fmt::format("{} at byte {}", why, at);
    return file;
  };
  if (text.substr(0, kFileHeader.size()) != kFileHeader) return fail("not a metadata file", 0);
  size_t pos = kFileHeader.size();
  while (pos < text.size()) {
    if (file.entries.size() >= max_entries)
      return fail(fmt::format("more than {} entries", max_entries), pos);
    std::string_view rest = text.substr(pos);
    size_t nl = rest.substr(0, kMaxEntryName + kMaxSizeDigits + 2).find('\n');
    if (nl == std::string_view::npos) return fail("record without its line end", pos);
    std::string_view line = rest.substr(0, nl);
    size_t sp = line.rfind(' ');
    if (sp == std::string_view::npos) return fail("record without a size", pos);
    std::string_view name = line.substr(0, sp), digits = line.substr(sp + 1);
    unsigned long long size = 0;
    if (digits.empty() || digits.size() > kMaxSizeDigits ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !parse_u64(digits, size))
      return fail("invalid size", pos);
    Result<std::string> checked = metadata_entry_name(name);
    if (!checked || *checked != name) return fail("invalid entry name", pos);
    if (!file.entries.empty() && name <= file.entries.rbegin()->first)
      return fail("entry out of order or repeated", pos);
    std::string_view value_and_end = rest.substr(nl + 1);
    if (size >= value_and_end.size() || value_and_end[size] != '\n') return fail("truncated value", pos);
    file.entries.emplace_hint(file.entries.end(), std::string(name),
                              std::string(value_and_end.substr(0, size)));
    pos += nl + 1 + size + 1;
  }
  return file;
}

std::string encode_metadata_file(const MetadataEntries& entries) {
  std::string out(kFileHeader);
  for (const auto& [name, value] : entries) {
    out += fmt::format("{} {}\n", name, value.size());
    out += value;
    out += '\n';
  }
  return out;
}

}  // namespace postern::imap::proto

// imap/proto/metadata.hpp: the pieces of the METADATA extension (RFC 5464) that need no I/O: entry names
// (3.2), the arguments of GETMETADATA (4.2) and SETMETADATA (4.3), the entries a DEPTH option selects, values
// in responses, and the codec of the file that keeps one mailbox's entries on disk:
//   "postern-metadata 1\n", then per entry, sorted by name: "<entry name> <value size>\n<value bytes>\n".
// Security: untrusted input twice over: command arguments from the network, and a file that may be damaged
// (or edited by hand). Entry names are checked before they are used anywhere; the file decoder never reads
// past its input, keeps at most max_entries entries and stops at the first malformed record (what it read
// before stays usable). Fuzzed by fuzz/imap_command.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "imap/proto/parser.hpp"

namespace postern::imap::proto {

constexpr size_t kMaxEntryName = 1024;  // bytes of an entry name

// An entry name as stored and reported: checked (begins with /private or /shared, printable ASCII, no '*',
// '%', "//" or trailing '/', at most kMaxEntryName bytes) and in lower case (names are case-insensitive, as
// Dovecot treats them). The error text is for a BAD reply.
Result<std::string> metadata_entry_name(std::string_view name);

enum class MetadataDepth { kZero, kOne, kInfinity };

// GETMETADATA [(MAXSIZE n DEPTH d)] mailbox (entry ...) | entry
struct GetMetadataArgs {
  const Token* mailbox = nullptr;  // points into the parsed command
  std::vector<std::string> entries;
  std::optional<uint64_t> maxsize;
  MetadataDepth depth = MetadataDepth::kZero;
};
Result<GetMetadataArgs> parse_getmetadata(const Command& c);

// SETMETADATA mailbox (entry value ...): a value is a string, a literal8 (binary) or NIL (remove the entry).
// An atom is taken as a string, as Dovecot does. A later value of the same entry wins.
struct SetMetadataArgs {
  const Token* mailbox = nullptr;
  std::vector<std::pair<std::string, std::optional<std::string>>> entries;
};
Result<SetMetadataArgs> parse_setmetadata(const Command& c);

using MetadataEntries = std::map<std::string, std::string>;

// The names in `entries` below `name` that DEPTH selects besides `name` itself: its children (kOne) or all
// its descendants (kInfinity), in order; none for kZero.
std::vector<std::string> metadata_below(const MetadataEntries& entries, std::string_view name,
                                        MetadataDepth depth);

// Appends a value to a METADATA response: a quoted string or literal as append_string chooses, a literal8
// when it holds NUL (RFC 5464 5: values may be binary).
void append_metadata_value(std::string& out, std::string_view value);

struct MetadataFile {
  MetadataEntries entries;
  bool damaged = false;  // the text held more than the entries: a bad record, or more than max_entries
  std::string error;     // what was wrong, for the log
};
// Decodes a metadata file. An empty text holds no entries (and is not damaged).
MetadataFile decode_metadata_file(std::string_view text, size_t max_entries);
std::string encode_metadata_file(const MetadataEntries& entries);

}  // namespace postern::imap::proto

// imap/proto/parser.hpp: a whole IMAP command (as framed by CommandReader, literals inline) into a tag, a
// command name and a tree of tokens (atoms, strings, NIL, parenthesized lists) (RFC 9051 9), and the typed
// pieces several commands share: sequence sets, flags, dates. Each command handler interprets its tokens.
// FETCH attributes such as BODY.PEEK[HEADER.FIELDS (A B)]<0.100> are read as one atom (the bracketed part
// may hold spaces and parentheses), as the grammar's section spec requires.
// Security: untrusted input; nesting depth is limited (kMaxDepth); linear time. Fuzzed by
// fuzz/imap_command.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imap/proto/section.hpp"

namespace postern::imap::proto {

struct Token {
  enum class Type { kAtom, kString, kNil, kList };
  Type type = Type::kAtom;
  std::string value;         // atom text or string contents
  std::vector<Token> items;  // kList
  bool literal8 = false;     // a ~{n} literal (RFC 3516)

  bool is_atom() const { return type == Type::kAtom; }
  bool is_list() const { return type == Type::kList; }
  // An astring (atom or string); NIL counts as the atom "NIL".
  bool is_astring() const { return type != Type::kList; }
  std::string_view text() const { return type == Type::kNil ? std::string_view("NIL") : value; }
};

struct Command {
  std::string tag;
  std::string name;  // upper case, without "UID "
  bool uid = false;
  std::vector<Token> args;
};

constexpr int kMaxDepth = 32;

// Parses `text` (a whole command, CRLF stripped). On failure returns the error and fills `tag` when it was
// read (else "*" is to be used).
struct ParseResult {
  bool ok = false;
  Command command;
  std::string error;  // for "<tag> BAD <error>"
};
ParseResult parse_command(std::string_view text);

// Sequence sets (RFC 9051 9: sequence-set), "*" as kStar. `$` (SEARCHRES, RFC 5182) as saved = true.
constexpr uint32_t kStar = 0;  // 0 is no valid number: "*" cannot be confused with 4294967295
struct SeqSet {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // as written: either end may be the higher
  bool saved = false;
};
std::optional<SeqSet> parse_seqset(std::string_view s);
// Whether `n` is in the set, with "*" meaning `star` (the largest number in use).
bool seqset_contains(const SeqSet& set, uint32_t n, uint32_t star);
// Formats a sorted list of numbers compactly: "1:3,7,9:10".
std::string format_seqset(const std::vector<uint32_t>& numbers);

// "02-Jan-2006" (SEARCH dates) → days-from-epoch midnight UTC as seconds; "02-Jan-2006 15:04:05 -0700"
// (APPEND date-time) → seconds since the epoch.
std::optional<int64_t> parse_date(std::string_view s);
std::optional<int64_t> parse_date_time(std::string_view s);
// INTERNALDATE format: "02-Jan-2006 15:04:05 +0000" (in the given UTC offset, minutes).
std::string format_date_time(int64_t t, int offset_minutes = 0);

// A FETCH section spec "1.2.HEADER.FIELDS (A B)" (the text between the brackets).
std::optional<Section> parse_section(std::string_view s);

}  // namespace postern::imap::proto

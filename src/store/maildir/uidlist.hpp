// store/maildir/uidlist.hpp: codecs for Dovecot's Maildir control files, as Dovecot 2.3 writes them:
//   dovecot-uidlist version 3: "3 V<uidvalidity> N<next uid> G<guid>" then "<uid> [<ext> ...] :<base name>"
//   per message (ext fields such as W<vsize> S<size>); Dovecot appends lines without rewriting the header,
//   so the next UID is the larger of N and the last UID + 1.
//   dovecot-keywords: "<index> <name>" per line; keyword i is the letter 'a' + i in ":2," flags.
// Pure functions, no I/O. Security: the files are written by us and by Dovecot as the mail user; a damaged
// file parses to an error (uidlist) or to the valid lines (keywords), never to an out-of-range index.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace postern::store::maildir {

struct UidlistEntry {
  uint32_t uid = 0;
  std::string ext;   // extension fields as written ("W123 S120"), may be empty
  std::string name;  // file base name (without ":2,...")
};

struct Uidlist {
  uint32_t uidvalidity = 0;
  uint32_t next_uid = 1;
  std::string guid;                   // hex, as after "G"
  std::string extra_header;           // header fields we do not interpret, kept as written
  std::vector<UidlistEntry> entries;  // ascending uid
};

// Parses a version 3 uidlist; a bad header is an error. Lines with a UID not above the previous one, or
// without " :", are skipped (never reused: the next UID stays above them); an unterminated last line (a
// writer died mid-append) is ignored.
Result<Uidlist> parse_uidlist(std::string_view text);
std::string format_uidlist(const Uidlist& list);
// The extension field `key` of `ext` ("W" of "W123 S120" is 123); false when absent.
bool uidlist_ext_field(std::string_view ext, char key, uint64_t& value);

// dovecot-keywords: index = letter; names not valid as IMAP atoms or indexes >= 26 are skipped.
std::vector<std::string> parse_keywords(std::string_view text);
std::string format_keywords(const std::vector<std::string>& keywords);

// The ":2," info of a Maildir file name: flags (Flag bits), keyword bits, and letters we keep but do not
// interpret (P, other upper-case letters, keyword letters without a name).
struct MaildirInfo {
  uint8_t flags = 0;
  uint32_t keywords = 0;
  std::string other;
};
// Splits "base:2,FS" into base and info; a name without ":2," has an empty info.
std::string_view maildir_base(std::string_view file_name);
MaildirInfo parse_info(std::string_view file_name, size_t known_keywords);
// "<base>:2,<letters sorted>".
std::string file_name_with_info(std::string_view base, const MaildirInfo& info);

}  // namespace postern::store::maildir

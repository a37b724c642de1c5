// store/maildir/uidlist.cpp: dovecot-uidlist and dovecot-keywords codecs, Maildir ":2," info.
#include "store/maildir/uidlist.hpp"

#include <algorithm>
#include <charconv>

#include "store/maildir/mailbox.hpp"

namespace postern::store::maildir {
namespace {

bool parse_num(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// IMAP atom characters that Dovecot accepts in a keyword (no specials, no controls, no '\\').
bool valid_keyword(std::string_view k) {
  if (k.empty()) return false;
  for (unsigned char c : k)
    if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' ||
        c == '\\' || c == ']')
      return false;
  return true;
}

constexpr std::string_view kFlagLetters = "DFRST";

uint8_t flag_of(char c) {
  switch (c) {
    case 'D':
      return kDraft;
    case 'F':
      return kFlagged;
    case 'R':
      return kAnswered;
    case 'S':
      return kSeen;
    case 'T':
      return kDeleted;
    default:
      return 0;
  }
}

}  // namespace

Result<Uidlist> parse_uidlist(std::string_view text) {
  Uidlist out;
  size_t eol = text.find('\n');
  if (eol == std::string_view::npos) return Error{"uidlist: no header line"};
  std::string_view header = text.substr(0, eol);
  text.remove_prefix(eol + 1);
  if (header.size() < 2 || header.substr(0, 2) != "3 ") return Error{"uidlist: not version 3"};
  header.remove_prefix(2);
  bool have_v = false, have_n = false;
  while (!header.empty()) {
    size_t sp = header.find(' ');
    std::string_view field = header.substr(0, sp);
    header = sp == std::string_view::npos ? std::string_view() : header.substr(sp + 1);
    if (field.empty()) continue;
    uint64_t n = 0;
    if (field[0] == 'V' && parse_num(field.substr(1), n) && n > 0 && n <= UINT32_MAX) {
      out.uidvalidity = static_cast<uint32_t>(n);
      have_v = true;
    } else if (field[0] == 'N' && parse_num(field.substr(1), n) && n > 0 && n <= UINT32_MAX) {
      out.next_uid = static_cast<uint32_t>(n);
      have_n = true;
    } else if (field[0] == 'G') {
      out.guid = std::string(field.substr(1));
    } else {
      if (!out.extra_header.empty()) out.extra_header += ' ';
      out.extra_header += field;
    }
  }
  if (!have_v || !have_n) return Error{"uidlist: header without V or N"};
  uint32_t last = 0;
  while (!text.empty()) {
    eol = text.find('\n');
    if (eol == std::string_view::npos) break;  // unterminated: a writer died mid-append
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 1);
    size_t sp = line.find(' ');
    uint64_t uid = 0;
    if (sp == std::string_view::npos || !parse_num(line.substr(0, sp), uid) || uid == 0 || uid >= UINT32_MAX)
      continue;
    std::string_view rest = line.substr(sp + 1);
    size_t colon = rest.size() > 0 && rest[0] == ':' ? 0 : rest.find(" :");
    if (colon == std::string_view::npos) continue;
    std::string_view ext = rest.substr(0, colon);
    std::string_view name = rest.substr(colon == 0 ? 1 : colon + 2);
    if (name.empty()) continue;
    out.next_uid = std::max<uint32_t>(out.next_uid, static_cast<uint32_t>(uid) + 1);
    if (uid <= last) continue;
    last = static_cast<uint32_t>(uid);
    out.entries.push_back({last, std::string(ext), std::string(name)});
  }
  return out;
}

std::string format_uidlist(const Uidlist& list) {
  std::string out = "3 V" + std::to_string(list.uidvalidity) + " N" + std::to_string(list.next_uid);
  if (!list.guid.empty()) out += " G" + list.guid;
  if (!list.extra_header.empty()) out += " " + list.extra_header;
  out += '\n';
  out.reserve(out.size() + list.entries.size() * 64);
  for (const auto& e : list.entries) {
    out += std::to_string(e.uid);
    out += ' ';
    if (!e.ext.empty()) {
      out += e.ext;
      out += ' ';
    }
    out += ':';
    out += e.name;
    out += '\n';
  }
  return out;
}

bool uidlist_ext_field(std::string_view ext, char key, uint64_t& value) {
  while (!ext.empty()) {
    size_t sp = ext.find(' ');
    std::string_view field = ext.substr(0, sp);
    ext = sp == std::string_view::npos ? std::string_view() : ext.substr(sp + 1);
    if (!field.empty() && field[0] == key && parse_num(field.substr(1), value)) return true;
  }
  return false;
}

std::vector<std::string> parse_keywords(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    size_t sp = line.find(' ');
    uint64_t idx = 0;
    if (sp == std::string_view::npos || !parse_num(line.substr(0, sp), idx) || idx >= 26) continue;
    std::string_view name = line.substr(sp + 1);
    if (!valid_keyword(name)) continue;
    if (out.size() <= idx) out.resize(idx + 1);
    out[idx] = std::string(name);
  }
  return out;
}

std::string format_keywords(const std::vector<std::string>& keywords) {
  std::string out;
  for (size_t i = 0; i < keywords.size(); ++i)
    if (!keywords[i].empty()) out += std::to_string(i) + " " + keywords[i] + "\n";
  return out;
}

std::string_view maildir_base(std::string_view file_name) {
  size_t colon = file_name.find(':');
  return colon == std::string_view::npos ? file_name : file_name.substr(0, colon);
}

MaildirInfo parse_info(std::string_view file_name, size_t known_keywords) {
  MaildirInfo info;
  size_t pos = file_name.find(":2,");
  if (pos == std::string_view::npos) return info;
  for (char c : file_name.substr(pos + 3)) {
    if (uint8_t f = flag_of(c)) {
      info.flags |= f;
    } else if (c >= 'a' && c <= 'z' && static_cast<size_t>(c - 'a') < known_keywords) {
      info.keywords |= 1u << (c - 'a');
    } else if (c > ' ' && c < 0x7f && c != '/' && info.other.find(c) == std::string::npos) {
      info.other += c;
    }
  }
  return info;
}

std::string file_name_with_info(std::string_view base, const MaildirInfo& info) {
  std::string letters = info.other;
  for (char c : kFlagLetters)
    if (info.flags & flag_of(c)) letters += c;
  for (int i = 0; i < 26; ++i)
    if (info.keywords & (1u << i)) letters += static_cast<char>('a' + i);
  std::sort(letters.begin(), letters.end());
  letters.erase(std::unique(letters.begin(), letters.end()), letters.end());
  std::string out(base);
  out += ":2,";
  out += letters;
  return out;
}

}  // namespace postern::store::maildir

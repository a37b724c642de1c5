#include "imap/proto/writer.hpp"

#include <fmt/format.h>

#include "base/strings.hpp"

namespace postern::imap::proto {
namespace {

bool quotable(std::string_view s, bool utf8) {
  if (s.size() > 1024) return false;
  for (unsigned char c : s)
    if (c == '\r' || c == '\n' || c == 0 || (c >= 0x80 && !utf8)) return false;
  return true;
}

// ASTRING-CHAR (RFC 9051 9): ATOM-CHAR or resp-specials ']'.
bool astring_char(unsigned char c) {
  if (c <= 0x20 || c >= 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '%':
    case '*':
    case '"':
    case '\\':
      return false;
    default:
      return true;
  }
}

}  // namespace

void append_literal(std::string& out, std::string_view s) {
  out += fmt::format("{{{}}}\r\n", s.size());
  out += s;
}

void append_literal8(std::string& out, std::string_view s) {
  out += fmt::format("~{{{}}}\r\n", s.size());
  out += s;
}

void append_string(std::string& out, std::string_view s, bool utf8) {
  if (!quotable(s, utf8)) return append_literal(out, s);
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

void append_nstring(std::string& out, const std::optional<std::string>& s, bool utf8) {
  if (!s) {
    out += "NIL";
    return;
  }
  append_string(out, *s, utf8);
}

void append_astring(std::string& out, std::string_view s, bool utf8) {
  bool atom = !s.empty() && !iequals(s, "NIL");
  for (unsigned char c : s)
    if (!astring_char(c)) {
      atom = false;
      break;
    }
  if (atom) {
    out += s;
  } else {
    append_string(out, s, utf8);
  }
}

}  // namespace postern::imap::proto

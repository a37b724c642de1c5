// base/strings.hpp: small string helpers shared by the parsers and the commands. ASCII only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postern {

inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
std::string_view trim(std::string_view s);
// Splits on any of `seps`, dropping empty pieces (Postfix list syntax: commas and white space).
std::vector<std::string> split_list(std::string_view s, std::string_view seps = ", \t\r\n");
// Splits at every `sep`, keeping empty pieces; a `sep` at the very end adds no empty last piece.
std::vector<std::string_view> split(std::string_view text, char sep);
// Splits text into lines at LF, removing a CR before it; an empty last line is not returned.
std::vector<std::string_view> split_lines(std::string_view text);
// Parses a decimal unsigned number that fits in uint64; false on anything else.
bool parse_u64(std::string_view s, unsigned long long& out);
// True when `s` is well-formed UTF-8 (no overlongs, no surrogates).
bool valid_utf8(std::string_view s);
// The LF bytes of `s`; and of them the bare ones, not after a CR (`cr_before`: the byte before `s` is a CR).
// Sixteen bytes at a time: line counts and sizes as sent are taken over whole messages.
size_t count_lf(std::string_view s);
size_t count_bare_lf(std::string_view s, bool cr_before = false);
// Makes `s` safe for one log line: control bytes and non-ASCII become \xNN, cut at `max` bytes.
std::string printable(std::string_view s, size_t max = 200);

}  // namespace postern

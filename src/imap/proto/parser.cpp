#include "imap/proto/parser.hpp"

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

#include "base/calendar.hpp"
#include "base/strings.hpp"

namespace postern::imap::proto {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// ATOM-CHAR plus the list wildcards and ']' (astrings, LIST patterns) and '\' (flags such as \Seen).
bool atom_char(unsigned char c) {
  if (c <= 0x20 || c == 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '"':
      return false;
    default:
      return true;
  }
}

// FETCH attributes whose section spec in brackets may hold spaces and parentheses.
bool section_atom(std::string_view name) {
  for (std::string_view n : {"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"})
    if (iequals(name, n)) return true;
  return false;
}

class Tokenizer {
 public:
  explicit Tokenizer(std::string_view s) : s_(s) {}

  bool at_end() const { return pos_ >= s_.size(); }
  const std::string& error() const { return error_; }

  // The tokens up to the end (depth 0) or a ')' (depth > 0).
  bool tokens(std::vector<Token>& out, int depth) {
    if (depth > kMaxDepth) return fail("Too deep nesting");
    bool first = true;
    while (pos_ < s_.size()) {
      if (s_[pos_] == ')') {
        if (depth == 0) return fail("Unexpected ')'");
        return true;
      }
      if (!first) {
        if (s_[pos_] != ' ') return fail("Missing space between arguments");
        ++pos_;
        if (pos_ < s_.size() && s_[pos_] == ')' && depth > 0) return true;  // lenient "(a )"
      }
      first = false;
      Token t;
      if (!token(t, depth)) return false;
      out.push_back(std::move(t));
    }
    if (depth > 0) return fail("Missing ')'");
    return true;
  }

 private:
  bool fail(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }

  bool token(Token& t, int depth) {
    char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      t.type = Token::Type::kList;
      if (!tokens(t.items, depth + 1)) return false;
      ++pos_;  // ')'
      return true;
    }
    if (c == '"') return quoted(t);
    if (c == '{') return literal(t);
    if (c == '~' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{') {
      ++pos_;
      t.literal8 = true;
      return literal(t);
    }
    return atom(t);
  }

  bool quoted(Token& t) {
    t.type = Token::Type::kString;
    ++pos_;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (pos_ >= s_.size()) break;
        c = s_[pos_++];
        if (c != '"' && c != '\\') return fail("Invalid escape in quoted string");
      } else if (c == '\r' || c == '\n' || c == '\0') {
        return fail("Invalid character in quoted string");
      }
      t.value += c;
    }
    return fail("Unterminated quoted string");
  }

  bool literal(Token& t) {
    t.type = Token::Type::kString;
    size_t close = s_.find('}', pos_);
    if (close == std::string_view::npos) return fail("Invalid literal");
    std::string_view digits = s_.substr(pos_ + 1, close - pos_ - 1);
    if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
    unsigned long long n = 0;
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit) || !parse_u64(digits, n))
      return fail("Invalid literal size");
    pos_ = close + 1;
    if (s_.substr(pos_, 2) != "\r\n") return fail("Literal size not followed by CRLF");
    pos_ += 2;
    if (n > s_.size() - pos_) return fail("Literal shorter than announced");
    t.value = std::string(s_.substr(pos_, n));
    pos_ += n;
    if (!t.literal8 && t.value.find('\0') != std::string::npos) return fail("NUL in literal");
    return true;
  }

  bool atom(Token& t) {
    size_t begin = pos_;
    while (pos_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '[' && section_atom(s_.substr(begin, pos_ - begin))) {
        // A section spec: everything up to the matching ']' belongs to the atom.
        int level = 0;
        while (pos_ < s_.size()) {
          char d = s_[pos_];
          if (static_cast<unsigned char>(d) < 0x20 || d == 0x7f) return fail("Invalid section");
          if (d == '[') ++level;
          if (d == ']' && --level == 0) break;
          ++pos_;
        }
        if (pos_ >= s_.size()) return fail("Missing ']'");
        ++pos_;
        continue;
      }
      if (!atom_char(c)) break;
      ++pos_;
    }
    if (pos_ == begin) return fail(fmt::format("Unexpected character '{}'", printable(s_.substr(pos_, 1))));
    t.value = std::string(s_.substr(begin, pos_ - begin));
    t.type = iequals(t.value, "NIL") ? Token::Type::kNil : Token::Type::kAtom;
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

bool tag_char(unsigned char c) {
  return atom_char(c) && c != '+' && c != '%' && c != '*';
}

bool parse_number(std::string_view s, int& out) {
  if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), is_digit)) return false;
  out = 0;
  for (char c : s) out = out * 10 + (c - '0');
  return true;
}

}  // namespace

ParseResult parse_command(std::string_view text) {
  ParseResult r;
  size_t sp = text.find(' ');
  std::string_view tag = text.substr(0, sp);
  if (tag.empty() || !std::all_of(tag.begin(), tag.end(), [](char c) { return tag_char(c); })) {
    r.error = "Error in IMAP command received by server.";
    return r;
  }
  r.command.tag = std::string(tag);
  if (sp == std::string_view::npos) {
    r.error = "Missing command.";
    return r;
  }
  std::string_view rest = text.substr(sp + 1);
  auto word = [&]() {
    size_t e = rest.find(' ');
    std::string_view w = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 1);
    std::string up;
    for (char c : w) up += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    return up;
  };
  std::string name = word();
  if (name == "UID") {
    r.command.uid = true;
    name = word();
  }
  if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    r.error = "Unknown command.";
    return r;
  }
  r.command.name = name;
  Tokenizer tok(rest);
  if (!tok.tokens(r.command.args, 0)) {
    r.error = tok.error();
    return r;
  }
  r.ok = true;
  return r;
}

std::optional<SeqSet> parse_seqset(std::string_view s) {
  SeqSet set;
  if (s == "$") {
    set.saved = true;
    return set;
  }
  if (s.empty()) return std::nullopt;
  for (std::string_view piece : split(s, ',')) {
    auto number = [](std::string_view n) -> std::optional<uint32_t> {
      if (n == "*") return kStar;
      unsigned long long v = 0;
      if (n.empty() || n[0] == '0' || !std::all_of(n.begin(), n.end(), is_digit) || !parse_u64(n, v) ||
          v > 0xffffffffULL)
        return std::nullopt;
      return static_cast<uint32_t>(v);
    };
    size_t colon = piece.find(':');
    auto lo = number(piece.substr(0, colon));
    auto hi = colon == std::string_view::npos ? lo : number(piece.substr(colon + 1));
    if (!lo || !hi) return std::nullopt;
    set.ranges.emplace_back(*lo, *hi);
  }
  if (s.back() == ',') return std::nullopt;
  return set;
}

bool seqset_contains(const SeqSet& set, uint32_t n, uint32_t star) {
  for (auto [lo, hi] : set.ranges) {
    uint32_t a = lo == kStar ? star : lo, b = hi == kStar ? star : hi;
    if (a > b) std::swap(a, b);
    if (n >= a && n <= b) return true;
  }
  return false;
}

std::string format_seqset(const std::vector<uint32_t>& numbers) {
  std::string out;
  for (size_t i = 0; i < numbers.size();) {
    size_t j = i;
    while (j + 1 < numbers.size() && numbers[j + 1] == numbers[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? fmt::format("{}", numbers[i]) : fmt::format("{}:{}", numbers[i], numbers[j]);
    i = j + 1;
  }
  return out;
}

std::optional<int64_t> parse_date(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  auto parts = split(s, '-');
  if (parts.size() != 3) return std::nullopt;
  int day = 0, year = 0;
  if (!parse_number(trim(parts[0]), day) || !parse_number(parts[2], year) || parts[2].size() != 4)
    return std::nullopt;
  int month = parts[1].size() == 3 ? month_index(parts[1]) : -1;
  if (month < 0 || s.back() == '-') return std::nullopt;
  static constexpr int kDays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day < 1 || day > kDays[month] || (month == 1 && day == 29 && !leap)) return std::nullopt;
  return days_from_civil(year, static_cast<unsigned>(month + 1), static_cast<unsigned>(day)) * 86400;
}

std::optional<int64_t> parse_date_time(std::string_view s) {
  // "dd-Mon-yyyy hh:mm:ss +zzzz", day possibly space-padded.
  if (s.size() != 26 && s.size() != 25) return std::nullopt;
  size_t sp = s.find(' ', 1);
  if (s[0] == ' ') sp = s.find(' ', 1);
  auto date = parse_date(trim(s.substr(0, sp)));
  if (!date) return std::nullopt;
  std::string_view rest = s.substr(sp + 1);
  if (rest.size() != 14 || rest[2] != ':' || rest[5] != ':' || rest[8] != ' ' ||
      (rest[9] != '+' && rest[9] != '-'))
    return std::nullopt;
  int hh, mm, ss, zh, zm;
  if (!parse_number(rest.substr(0, 2), hh) || !parse_number(rest.substr(3, 2), mm) ||
      !parse_number(rest.substr(6, 2), ss) || !parse_number(rest.substr(10, 2), zh) ||
      !parse_number(rest.substr(12, 2), zm) || hh > 23 || mm > 59 || ss > 60 || zm > 59)
    return std::nullopt;
  int64_t offset = (zh * 60 + zm) * 60 * (rest[9] == '-' ? -1 : 1);
  return *date + hh * 3600 + mm * 60 + ss - offset;
}

std::string format_date_time(int64_t t, int offset_minutes) {
  time_t local = static_cast<time_t>(t + offset_minutes * 60);
  struct tm tm {};
  gmtime_r(&local, &tm);
  int off = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  return fmt::format("{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}", tm.tm_mday, kMonthNames[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, offset_minutes < 0 ? '-' : '+',
                     off / 60, off % 60);
}

std::optional<Section> parse_section(std::string_view s) {
  Section sec;
  // Part numbers first: "1.2." ...
  while (!s.empty() && is_digit(s[0])) {
    size_t end = 0;
    while (end < s.size() && is_digit(s[end])) ++end;
    unsigned long long n = 0;
    if (s[0] == '0' || !parse_u64(s.substr(0, end), n) || n > 0xffffffffULL) return std::nullopt;
    sec.path.push_back(static_cast<uint32_t>(n));
    s.remove_prefix(end);
    if (s.empty()) return sec;
    if (s[0] != '.') return std::nullopt;
    s.remove_prefix(1);
    if (s.empty()) return std::nullopt;
  }
  if (s.empty()) return sec;
  std::string_view word = s.substr(0, s.find(' '));
  if (iequals(s, "HEADER")) {
    sec.kind = Section::Kind::kHeader;
  } else if (iequals(s, "TEXT")) {
    sec.kind = Section::Kind::kText;
  } else if (iequals(s, "MIME")) {
    if (sec.path.empty()) return std::nullopt;
    sec.kind = Section::Kind::kMime;
  } else if (iequals(word, "HEADER.FIELDS") || iequals(word, "HEADER.FIELDS.NOT")) {
    sec.kind = word.size() == 13 ? Section::Kind::kHeaderFields : Section::Kind::kHeaderFieldsNot;
    std::string_view list = s.substr(word.size());
    if (list.size() < 3 || list[0] != ' ' || list[1] != '(' || list.back() != ')') return std::nullopt;
    Tokenizer tok(list.substr(2, list.size() - 3));
    std::vector<Token> names;
    if (!tok.tokens(names, 0) || names.empty()) return std::nullopt;
    for (auto& n : names) {
      if (n.is_list()) return std::nullopt;
      sec.fields.push_back(std::string(n.text()));
    }
  } else {
    return std::nullopt;
  }
  return sec;
}

}  // namespace postern::imap::proto

#include "mime/headers.hpp"

#include <utility>

#include "base/calendar.hpp"
#include "base/strings.hpp"

namespace postern::mime {
namespace {

bool number(std::string_view s, int& out) {
  if (s.empty() || s.size() > 4) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

}  // namespace

std::optional<int64_t> parse_date(std::string_view value) {
  // Comments and the weekday are skipped; the rest is "d mon yyyy hh:mm[:ss] zone".
  std::string clean;
  int depth = 0;
  for (char c : value) {
    if (c == '(')
      ++depth;
    else if (c == ')' && depth > 0)
      --depth;
    else if (depth == 0)
      clean += c == ',' ? ' ' : c;
  }
  auto words = split_list(clean, " \t\r\n");
  size_t i = 0;
  if (i < words.size() && !words[i].empty() && (words[i][0] < '0' || words[i][0] > '9')) ++i;  // weekday
  if (words.size() < i + 4) return std::nullopt;
  int day = 0, year = 0;
  if (!number(words[i], day) || day < 1 || day > 31) return std::nullopt;
  int m = month_index(words[i + 1]);
  if (m < 0 || !number(words[i + 2], year)) return std::nullopt;
  if (words[i + 2].size() <= 2)
    year += year < 50 ? 2000 : 1900;
  else if (words[i + 2].size() == 3)
    year += 1900;
  auto hms = split(words[i + 3], ':');
  int hh = 0, mm = 0, ss = 0;
  if (hms.size() < 2 || hms.size() > 3 || !number(hms[0], hh) || !number(hms[1], mm) ||
      (hms.size() == 3 && !number(hms[2], ss)) || hh > 23 || mm > 59 || ss > 60)
    return std::nullopt;
  int64_t offset = 0;
  if (words.size() > i + 4) {
    std::string_view z = words[i + 4];
    int v = 0;
    if ((z[0] == '+' || z[0] == '-') && z.size() == 5 && number(z.substr(1), v)) {
      offset = ((v / 100) * 60 + v % 100) * 60 * (z[0] == '-' ? -1 : 1);
    } else {
      // Obsolete zones (RFC 5322 4.3); military zones count as +0000.
      static constexpr std::pair<std::string_view, int> kZones[] = {
          {"ut", 0},   {"gmt", 0},  {"est", -5}, {"edt", -4}, {"cst", -6},
          {"cdt", -5}, {"mst", -7}, {"mdt", -6}, {"pst", -8}, {"pdt", -7}};
      std::string lz = to_lower(z);
      for (auto [name, hours] : kZones)
        if (lz == name) offset = hours * 3600;
    }
  }
  return days_from_civil(year, static_cast<unsigned>(m + 1), static_cast<unsigned>(day)) * 86400 + hh * 3600 +
         mm * 60 + ss - offset;
}

std::vector<Field> parse_header(std::string_view message, size_t* body_offset, std::string_view only) {
  std::vector<Field> fields;
  bool skipping = false;  // in a field that `only` leaves out
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find('\n', pos);
    size_t next = eol == std::string_view::npos ? message.size() : eol + 1;
    std::string_view line = message.substr(pos, (eol == std::string_view::npos ? message.size() : eol) - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      pos = next;
      break;
    }
    if ((line[0] == ' ' || line[0] == '\t') && (skipping || !fields.empty())) {
      if (skipping) {
        pos = next;
        continue;
      }
      if (!fields.back().value.empty()) fields.back().value += " ";
      fields.back().value += trim(line);
    } else {
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) break;  // not a header line: the body starts here
      std::string_view name = trim(line.substr(0, colon));
      skipping = !only.empty() && !iequals(name, only);
      if (!skipping) fields.push_back({std::string(name), std::string(trim(line.substr(colon + 1)))});
    }
    pos = next;
  }
  if (body_offset) *body_offset = pos;
  return fields;
}

std::optional<std::string> find_field(const std::vector<Field>& fields, std::string_view name) {
  for (const auto& f : fields)
    if (iequals(f.name, name)) return f.value;
  return std::nullopt;
}

std::vector<std::string> parse_address_list(std::string_view value) {
  std::vector<std::string> out;
  std::string current;  // text of the current mailbox outside comments
  std::string angle;    // text inside <...>
  bool in_angle = false, had_angle = false, in_quote = false;
  int comment = 0;
  auto finish = [&] {
    std::string addr(trim(had_angle ? angle : current));
    // A bare "display name" without an address is not a mailbox.
    if (!addr.empty() &&
        (had_angle || addr.find('@') != std::string::npos || addr.find(' ') == std::string::npos))
      out.push_back(std::move(addr));
    current.clear();
    angle.clear();
    had_angle = false;
  };
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (comment > 0) {
      if (c == '\\')
        ++i;
      else if (c == '(')
        ++comment;
      else if (c == ')')
        --comment;
      continue;
    }
    if (in_quote) {
      if (c == '\\' && i + 1 < value.size()) {
        (in_angle ? angle : current) += value[++i];
      } else if (c == '"') {
        in_quote = false;
      } else {
        (in_angle ? angle : current) += c;
      }
      continue;
    }
    if (in_angle) {
      if (c == '>')
        in_angle = false;
      else if (c != ' ' && c != '\t')
        angle += c;
      continue;
    }
    switch (c) {
      case '"':
        in_quote = true;
        break;
      case '(':
        ++comment;
        break;
      case '<':
        in_angle = true;
        had_angle = true;
        angle.clear();
        break;
      case ':':  // group name: what came before was its display name
        current.clear();
        break;
      case ',':
      case ';':
        finish();
        break;
      default:
        current += c;
    }
  }
  finish();
  return out;
}

}  // namespace postern::mime

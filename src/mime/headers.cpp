#include "mime/headers.hpp"

#include "base/strings.hpp"

namespace postern::mime {

std::vector<Field> parse_header(std::string_view message, size_t* body_offset) {
  std::vector<Field> fields;
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
    if ((line[0] == ' ' || line[0] == '\t') && !fields.empty()) {
      if (!fields.back().value.empty()) fields.back().value += " ";
      fields.back().value += trim(line);
    } else {
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) break;  // not a header line: the body starts here
      fields.push_back({std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1)))});
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

#include "dkim/canon.hpp"

#include "base/strings.hpp"

namespace postern::dkim {
namespace {

constexpr size_t kChunk = 16 * 1024;

bool wsp(char c) {
  return c == ' ' || c == '\t';
}

}  // namespace

std::vector<RawField> split_header(std::string_view message, size_t& body_offset) {
  std::vector<RawField> fields;
  size_t pos = 0;
  while (pos < message.size() && message[pos] != '\n') {
    // A field: this line and every following one that starts with white space.
    size_t end = message.find('\n', pos);
    while (end != std::string_view::npos && end + 1 < message.size() && wsp(message[end + 1]))
      end = message.find('\n', end + 1);
    if (end == std::string_view::npos) end = message.size();
    std::string_view text = message.substr(pos, end - pos);
    fields.push_back({text.substr(0, text.find(':')), text});
    pos = end + 1;
  }
  body_offset = pos < message.size() ? pos + 1 : message.size();
  return fields;
}

std::string relaxed_header(std::string_view field) {
  size_t colon = field.find(':');
  std::string out;
  for (char c : field.substr(0, colon))
    if (c != '\n') out += ascii_lower(c);  // unfolded (a name without a colon may span lines)
  while (!out.empty() && wsp(out.back())) out.pop_back();
  out += ':';
  if (colon == std::string_view::npos) return out;
  bool space = false;
  size_t value_start = out.size();
  for (char c : field.substr(colon + 1)) {
    if (c == '\n') continue;  // unfolding: the CR LF goes, the white space after it stays
    if (wsp(c)) {
      space = true;
      continue;
    }
    if (space && out.size() > value_start) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

void RelaxedBody::feed(std::string_view piece) {
  size_t i = 0;
  while (i < piece.size()) {
    char c = piece[i];
    if (c == '\n') {
      // White space at the end of the line is dropped; an empty line waits until a later line has content.
      if (line_has_content_) {
        put("\r\n");
      } else {
        ++empty_lines_;
      }
      line_has_content_ = space_ = false;
      ++i;
      continue;
    }
    if (wsp(c)) {
      space_ = true;
      ++i;
      continue;
    }
    if (!line_has_content_) {
      for (; empty_lines_ > 0; --empty_lines_) put("\r\n");
      line_has_content_ = true;
    }
    if (space_) put(" ");
    space_ = false;
    // The run of ordinary bytes up to the next white space or line end, in one go.
    size_t end = i + 1;
    while (end < piece.size() && piece[end] != '\n' && !wsp(piece[end])) ++end;
    put(piece.substr(i, end - i));
    i = end;
  }
}

void RelaxedBody::finish() {
  if (line_has_content_) put("\r\n");
  line_has_content_ = space_ = false;
  empty_lines_ = 0;
  flush();
}

void RelaxedBody::put(std::string_view bytes) {
  out_ += bytes;
  if (out_.size() >= kChunk) flush();
}

void RelaxedBody::flush() {
  if (!out_.empty()) sink_(out_);
  out_.clear();
}

}  // namespace postern::dkim

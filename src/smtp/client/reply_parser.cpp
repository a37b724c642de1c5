#include "smtp/client/reply_parser.hpp"

#include <fmt/format.h>

#include "base/strings.hpp"

namespace postern::smtp::client {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Digits at the start of `s`, at least 1 and at most `max`; 0 when that is not so.
size_t digit_run(std::string_view s, size_t max) {
  size_t n = 0;
  while (n < s.size() && is_digit(s[n])) ++n;
  return n >= 1 && n <= max ? n : 0;
}

}  // namespace

std::string_view enhanced_code(std::string_view text, char klass) {
  if (text.size() < 5 || text[0] != klass || text[1] != '.') return {};
  size_t pos = 2;
  size_t subject = digit_run(text.substr(pos), 3);
  if (subject == 0 || pos + subject >= text.size() || text[pos + subject] != '.') return {};
  pos += subject + 1;
  size_t detail = digit_run(text.substr(pos), 3);
  if (detail == 0) return {};
  pos += detail;
  if (pos < text.size() && text[pos] != ' ') return {};
  return text.substr(0, pos);
}

void ReplyParser::clear() {
  buf_.clear();
  pos_ = 0;
  partial_ = proto::Reply();
  partial_bytes_ = 0;
}

Result<proto::Reply> ReplyParser::fail(std::string message) {
  error_ = Error{std::move(message)};
  buf_.clear();
  pos_ = 0;
  return *error_;
}

std::optional<Result<proto::Reply>> ReplyParser::next() {
  if (error_) return Result<proto::Reply>(*error_);
  for (;;) {
    std::string_view rest = std::string_view(buf_).substr(pos_);
    size_t lf = rest.find('\n');
    if (lf == std::string_view::npos) {
      // One byte more than the limit may be the CR of a line that is exactly at the limit.
      if (rest.size() > limits_.max_line + 1) {
        return fail(fmt::format("reply line longer than {} bytes", limits_.max_line));
      }
      if (pos_ > 0) {  // keep only the unfinished line
        buf_.erase(0, pos_);
        pos_ = 0;
      }
      return std::nullopt;
    }
    std::string_view line = rest.substr(0, lf);
    pos_ += lf + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > limits_.max_line) {
      return fail(fmt::format("reply line longer than {} bytes", limits_.max_line));
    }
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2]) ||
        (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      return fail("malformed reply line: " + printable(line, 100));
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!partial_.lines.empty() && code != partial_.code) {
      return fail(fmt::format("reply code {} after {} in one reply", code, partial_.code));
    }
    if (partial_.lines.size() >= limits_.max_lines) {
      return fail(fmt::format("reply of more than {} lines", limits_.max_lines));
    }
    partial_bytes_ += line.size();
    if (partial_bytes_ > limits_.max_total) {
      return fail(fmt::format("reply longer than {} bytes", limits_.max_total));
    }
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
    if (partial_.lines.empty()) {
      partial_.code = code;
      partial_.enhanced = std::string(enhanced_code(text, line[0]));
    }
    // Every line repeats the enhanced code (RFC 2034 4): the text is what follows it.
    if (!partial_.enhanced.empty() && enhanced_code(text, line[0]) == partial_.enhanced) {
      text.remove_prefix(std::min(text.size(), partial_.enhanced.size() + 1));
    }
    partial_.lines.emplace_back(text);
    bool last = line.size() == 3 || line[3] == ' ';
    if (last) {
      proto::Reply done = std::move(partial_);
      partial_ = proto::Reply();
      partial_bytes_ = 0;
      return Result<proto::Reply>(std::move(done));
    }
  }
}

}  // namespace postern::smtp::client

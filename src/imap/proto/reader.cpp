#include "imap/proto/reader.hpp"

#include <algorithm>

#include "base/strings.hpp"

namespace postern::imap::proto {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// A line segment ending in "{n}", "{n+}" or "~{n}": sets `size` and `sync`.
bool literal_announcement(std::string_view seg, uint64_t& size, bool& sync) {
  if (seg.empty() || seg.back() != '}') return false;
  size_t open = seg.rfind('{');
  if (open == std::string_view::npos) return false;
  std::string_view digits = seg.substr(open + 1, seg.size() - open - 2);
  sync = true;
  if (!digits.empty() && digits.back() == '+') {
    sync = false;
    digits.remove_suffix(1);
  }
  if (digits.empty() || digits.size() > 19 || !std::all_of(digits.begin(), digits.end(), is_digit))
    return false;
  unsigned long long n = 0;
  if (!parse_u64(digits, n)) return false;
  size = n;
  return true;
}

}  // namespace

void CommandReader::clear() {
  buf_.clear();
  pos_ = 0;
  cmd_.clear();
  tag_.clear();
  name_.clear();
  state_ = State::kLine;
  literals_ = 0;
  line_bytes_ = 0;
  done_ = false;
}

void CommandReader::sanitize_tag() {
  // The tag is echoed in the refusal: only a well-formed one (ASTRING-CHARs but '+') is.
  bool good = !tag_.empty() && tag_.size() <= 64;
  for (unsigned char c : tag_)
    if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' ||
        c == '\\' || c == '+')
      good = false;
  if (!good) tag_.assign(1, '*');
}

void CommandReader::compact() {
  if (pos_ > 0 && (pos_ >= buf_.size() || pos_ > 65536)) {
    buf_.erase(0, pos_);
    pos_ = 0;
    if (buf_.empty() && buf_.capacity() > 65536) buf_.shrink_to_fit();
  }
}

std::string CommandReader::take_pending() {
  std::string rest = buf_.substr(pos_);
  buf_.clear();
  pos_ = 0;
  return rest;
}

bool CommandReader::next_line(std::string& line) {
  size_t lf = buf_.find('\n', pos_);
  if (lf == std::string::npos) {
    if (buf_.size() - pos_ > limits_.max_line) {
      // Keep only the start: the line is returned cut when its end arrives.
      buf_.erase(pos_ + limits_.max_line);
    }
    return false;
  }
  size_t end = lf;
  if (end > pos_ && buf_[end - 1] == '\r') --end;
  line.assign(buf_, pos_, std::min(end - pos_, limits_.max_line));
  pos_ = lf + 1;
  compact();
  return true;
}

std::optional<CommandReader::Status> CommandReader::end_of_segment(size_t seg_begin) {
  std::string_view seg = std::string_view(cmd_).substr(seg_begin);
  if (seg_begin == 0) {
    // The first line: learn tag and command name, for error replies and the literal limit.
    size_t sp = seg.find(' ');
    tag_ = std::string(seg.substr(0, sp));
    name_.clear();
    if (sp != std::string_view::npos) {
      std::string_view rest = seg.substr(sp + 1);
      std::string_view word = rest.substr(0, rest.find(' '));
      if (iequals(word, "UID")) {
        rest.remove_prefix(std::min(rest.size(), word.size() + 1));
        word = rest.substr(0, rest.find(' '));
      }
      for (char c : word) name_ += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
  }
  uint64_t size = 0;
  bool sync = true;
  if (!literal_announcement(seg, size, sync)) {
    done_ = true;
    return Status::kCommand;
  }
  literal_size_ = size;
  sanitize_tag();
  uint64_t limit = name_ == "APPEND" ? limits_.max_append_literal : limits_.max_literal;
  bool too_big = (limit != 0 && size > limit) || ++literals_ > limits_.max_literals;
  if (too_big) {
    done_ = true;  // a synchronizing literal's client waits for "+", which never comes
    if (!sync) {
      state_ = State::kSkipLiteral;
      literal_left_ = size;
    }
    return Status::kLiteralTooBig;
  }
  cmd_ += "\r\n";
  state_ = State::kLiteral;
  literal_left_ = size;
  if (!sync) return std::nullopt;  // its bytes may be buffered already: next() goes on reading them
  return Status::kContinue;
}

CommandReader::Status CommandReader::next() {
  if (done_) {
    cmd_.clear();
    if (cmd_.capacity() > 65536) cmd_.shrink_to_fit();  // an APPEND's message is not kept around
    tag_.clear();
    name_.clear();
    literals_ = 0;
    line_bytes_ = 0;
    done_ = false;
  }
  while (true) {
    if (state_ == State::kLiteral || state_ == State::kSkipLiteral) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(literal_left_, buf_.size() - pos_));
      if (state_ == State::kLiteral) cmd_.append(buf_, pos_, take);
      pos_ += take;
      literal_left_ -= take;
      compact();
      if (literal_left_ > 0) return Status::kNeedMore;
      // After a refused literal, the rest of its command is dropped too.
      state_ = state_ == State::kLiteral ? State::kLine : State::kSkipLine;
      continue;
    }
    size_t lf = buf_.find('\n', pos_);
    if (state_ == State::kSkipLine) {
      if (lf == std::string::npos) {
        // Keep a short tail: it may hold the start of a literal announcement.
        size_t keep = std::min<size_t>(buf_.size() - pos_, 24);
        pos_ = buf_.size() - keep;
        compact();
        return Status::kNeedMore;
      }
      size_t end = lf > pos_ && buf_[lf - 1] == '\r' ? lf - 1 : lf;
      uint64_t size = 0;
      bool sync = true;
      bool literal = literal_announcement(std::string_view(buf_).substr(pos_, end - pos_), size, sync);
      pos_ = lf + 1;
      compact();
      // A later non-synchronizing literal of the refused command is skipped as well, or its bytes would be
      // read as commands; a synchronizing one never comes (no "+" is sent).
      if (literal && !sync) {
        state_ = State::kSkipLiteral;
        literal_left_ = size;
      } else {
        state_ = State::kLine;
      }
      continue;
    }
    size_t seg_len = (lf == std::string::npos ? buf_.size() : lf) - pos_;
    if (line_bytes_ + seg_len > limits_.max_line + 1) {
      state_ = State::kSkipLine;
      done_ = true;
      if (tag_.empty())
        tag_ = std::string(std::string_view(buf_).substr(pos_, std::min<size_t>(seg_len, 64)));
      tag_ = tag_.substr(0, tag_.find(' '));
      sanitize_tag();
      return Status::kLineTooLong;
    }
    if (lf == std::string::npos) return Status::kNeedMore;
    size_t end = lf;
    if (end > pos_ && buf_[end - 1] == '\r') --end;
    size_t seg_begin = cmd_.size();
    cmd_.append(buf_, pos_, end - pos_);
    line_bytes_ += end - pos_;
    pos_ = lf + 1;
    compact();
    if (auto st = end_of_segment(seg_begin)) return *st;
  }
}

}  // namespace postern::imap::proto

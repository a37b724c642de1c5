#include "smtp/client/body.hpp"

#include <algorithm>

namespace postern::smtp::client {

uint64_t BodyEncoder::bdat_size(std::string_view content) {
  uint64_t size = content.size();
  for (size_t lf = content.find('\n'); lf != std::string_view::npos; lf = content.find('\n', lf + 1)) {
    if (lf == 0 || content[lf - 1] != '\r') ++size;
  }
  if (!content.empty() && content.back() != '\n') size += 2;
  return size;
}

std::string_view BodyEncoder::next() {
  out_.clear();
  if (finished_) return {};
  while (out_.size() < piece_ && pos_ < content_.size()) {
    // At a line start: a leading "." is doubled for DATA.
    if (mode_ == Mode::kData && (pos_ == 0 || content_[pos_ - 1] == '\n') && content_[pos_] == '.')
      out_ += '.';
    size_t lf = content_.find('\n', pos_);
    size_t end = lf == std::string_view::npos ? content_.size() : lf;
    // A long line is cut at the piece size; the rest follows in the next round (not at a line start).
    size_t take = std::min(end - pos_, std::max<size_t>(1, piece_ - std::min(piece_, out_.size())));
    if (take < end - pos_) {
      out_.append(content_.substr(pos_, take));
      pos_ += take;
      break;
    }
    out_.append(content_.substr(pos_, end - pos_));
    pos_ = end;
    if (lf != std::string_view::npos) {
      if (lf == 0 || content_[lf - 1] != '\r') out_ += '\r';
      out_ += '\n';
      ++pos_;
    }
  }
  if (pos_ >= content_.size()) {
    if (!content_.empty() && content_.back() != '\n') out_ += "\r\n";
    if (mode_ == Mode::kData) out_ += ".\r\n";
    finished_ = true;
  }
  return out_;
}

}  // namespace postern::smtp::client

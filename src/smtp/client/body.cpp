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
    // Only the room left in this piece is searched, so that a long line costs no rescans; a line longer
    // than that is cut and continues in the next round (not at a line start).
    size_t room = std::max<size_t>(1, piece_ - std::min(piece_, out_.size()));
    std::string_view window = content_.substr(pos_, room);
    size_t lf = window.find('\n');
    if (lf == std::string_view::npos) {
      out_.append(window);
      pos_ += window.size();
      continue;
    }
    out_.append(window.substr(0, lf));
    pos_ += lf;
    if (pos_ == 0 || content_[pos_ - 1] != '\r') out_ += '\r';
    out_ += '\n';
    ++pos_;
  }
  if (pos_ >= content_.size()) {
    if (!content_.empty() && content_.back() != '\n') out_ += "\r\n";
    if (mode_ == Mode::kData) out_ += ".\r\n";
    finished_ = true;
  }
  return out_;
}

}  // namespace postern::smtp::client

#include "smtp/proto/line_buffer.hpp"

namespace postern::smtp::proto {

void LineBuffer::consume(size_t n) {
  pos_ += n;
  if (pos_ >= buf_.size()) clear();
}

void LineBuffer::clear() {
  buf_.clear();
  pos_ = 0;
}

LineBuffer::Status LineBuffer::next(std::string_view& line) {
  // Compact: keep the buffer from growing when lines are consumed one by one.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  std::string_view rest = std::string_view(buf_).substr(pos_);
  size_t lf = rest.find('\n');
  if (skipping_) {
    if (lf == std::string_view::npos) {
      clear();
      return Status::kNeedMore;
    }
    skipping_ = false;
    pos_ += lf + 1;
    return next(line);
  }
  if (lf == std::string_view::npos) {
    // One byte more than the limit may be the CR of a line that is exactly at the limit.
    if (rest.size() > max_line_ + 1) {
      skipping_ = true;
      clear();
      return Status::kTooLong;
    }
    return Status::kNeedMore;
  }
  std::string_view l = rest.substr(0, lf);
  pos_ += lf + 1;
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  if (l.size() > max_line_) return Status::kTooLong;
  line = l;
  return Status::kLine;
}

}  // namespace postern::smtp::proto

// smtp/proto/line_buffer.hpp: splits a byte stream into command lines with a length limit.
// A line ends at LF (a CR before it is removed), as Postfix reads commands. A line longer than the limit is
// reported once as kTooLong and its remaining bytes are dropped up to its end: memory stays bounded.
// Security: untrusted input. Fuzzed by fuzz/smtp_command.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace postern::smtp::proto {

class LineBuffer {
 public:
  enum class Status { kLine, kNeedMore, kTooLong };

  explicit LineBuffer(size_t max_line) : max_line_(max_line) {}

  void append(std::string_view bytes) { buf_.append(bytes); }
  // Next complete line (without CR LF) in `line`, valid until the next call.
  Status next(std::string_view& line);
  // Bytes received but not yet returned as lines (pipelined commands, or the start of DATA content).
  std::string_view pending() const { return std::string_view(buf_).substr(pos_); }
  // Drops `n` bytes of pending() (the caller consumed them, e.g. as message content).
  void consume(size_t n);
  bool empty() const { return pos_ >= buf_.size(); }
  // Discards everything pending: after STARTTLS nothing sent before the handshake may be used.
  void clear();

 private:
  std::string buf_;
  size_t pos_ = 0;
  size_t max_line_;
  bool skipping_ = false;  // inside an overlong line, dropping bytes until its LF
};

}  // namespace postern::smtp::proto

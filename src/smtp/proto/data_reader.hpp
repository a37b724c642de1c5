// smtp/proto/data_reader.hpp: the DATA phase (RFC 5321 4.1.1.4, 4.5.2): finds the end of data and undoes
// dot-stuffing, and the BDAT phase (RFC 3030) which takes an exact byte count. Content is stored with LF line
// ends (CRLF becomes LF; a bare CR or bare LF is kept as it is), as Maildir files are written.
// Security: untrusted input. Only CR LF "." CR LF ends DATA: a bare LF or bare CR is never a line end for
// that purpose (SMTP smuggling, CVE-2023-51764), and a "." after a bare LF is not at a line start.
// Fuzzed by fuzz/smtp_data.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace postern::smtp::proto {

// Turns CR LF into LF across calls (a CR at the end of one piece may pair with a LF at the start of the
// next).
class CrlfToLf {
 public:
  void feed(std::string_view in, std::string& out);
  // Emits a pending CR at the very end of the content.
  void finish(std::string& out);

 private:
  bool pending_cr_ = false;
};

class DataReader {
 public:
  // Stops storing content past `max_size` bytes (0: no limit); the end is still found.
  explicit DataReader(uint64_t max_size) : max_size_(max_size) {}

  // Consumes bytes of `in` up to and including the terminating CRLF.CRLF; appends content to `out`.
  // Returns how many bytes were consumed: the rest of `in` belongs to the next command.
  size_t feed(std::string_view in, std::string& out);
  bool done() const { return state_ == State::kDone; }
  bool too_big() const { return too_big_; }
  // Bytes of content seen (counted also past the limit).
  uint64_t size() const { return size_; }

 private:
  enum class State { kLineStart, kDot, kDotCr, kMid, kCr, kDone };
  void emit(std::string& out, std::string_view run);

  State state_ = State::kLineStart;
  uint64_t max_size_;
  uint64_t size_ = 0;
  bool too_big_ = false;
};

}  // namespace postern::smtp::proto

// imap/proto/reader.hpp: frames an IMAP client's byte stream into whole commands (RFC 9051 2.2.1, 4.3;
// literals {n}, non-synchronizing {n+} (RFC 7888) and literal8 ~{n} (RFC 3516)). A command is returned with
// its literals inline, exactly as sent ("{3}\r\nabc" stays in the text), for imap/proto/parser.
// Also hands out plain lines (IDLE's DONE, AUTHENTICATE responses).
// Security: untrusted input. Memory is bounded: a line longer than max_line, a literal larger than its limit
// (APPEND: max_append_literal; anything else: max_literal) or more than max_literals literals in one command
// is refused; the bytes of a refused non-synchronizing literal are read and dropped, so that the stream stays
// in step. Fuzzed by fuzz/imap_command.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::imap::proto {

struct ReaderLimits {
  size_t max_line = 65536;          // Dovecot's imap_max_line_length
  size_t max_literal = 65536;       // literals outside APPEND (mailbox names, search strings)
  uint64_t max_append_literal = 0;  // APPEND message size (message_size_limit); 0: no limit
  size_t max_literals = 1000;       // literals in one command (MULTIAPPEND)
};

class CommandReader {
 public:
  enum class Status {
    kNeedMore,       // feed more bytes
    kCommand,        // command() holds a whole command
    kContinue,       // a synchronizing literal is announced: send "+ ..." then feed its bytes
    kLineTooLong,    // refused: reply BAD (tag() may be empty when the tag was not read)
    kLiteralTooBig,  // refused: reply (tag(), literal_size()); a synchronizing literal's bytes never come
  };

  explicit CommandReader(ReaderLimits limits) : limits_(limits) {}

  void append(std::string_view bytes) { buf_.append(bytes); }
  Status next();
  // The command after kCommand, without its final CRLF; valid until the next call to next().
  std::string_view command() const { return cmd_; }
  // The tag of the command being read (for error replies).
  const std::string& tag() const { return tag_; }
  // The command name (upper case) of the command being read, when its first line has been seen.
  const std::string& name() const { return name_; }
  uint64_t literal_size() const { return literal_size_; }

  // Plain line mode (IDLE DONE, AUTHENTICATE): the next line without CRLF; false when none is complete.
  // A line longer than max_line is returned cut (the rest dropped).
  bool next_line(std::string& line);
  // Bytes received and not yet used.
  bool empty() const { return pos_ >= buf_.size(); }
  // Drops everything buffered (after STARTTLS nothing sent before the handshake may be used).
  void clear();
  // Removes and returns the bytes received but not yet used (after COMPRESS: they are compressed).
  std::string take_pending();

 private:
  enum class State { kLine, kLiteral, kSkipLine, kSkipLiteral };
  // Looks at a finished line segment: a literal announcement or the end of the command.
  // Nothing: a non-synchronizing literal follows, whose bytes next() goes on reading.
  std::optional<Status> end_of_segment(size_t seg_begin);
  void compact();
  void sanitize_tag();

  ReaderLimits limits_;
  std::string buf_;
  size_t pos_ = 0;
  std::string cmd_;
  std::string tag_, name_;
  State state_ = State::kLine;
  uint64_t literal_size_ = 0;
  uint64_t literal_left_ = 0;
  size_t literals_ = 0;
  size_t line_bytes_ = 0;  // bytes of the command outside literals
  bool done_ = false;      // cmd_ was returned: start afresh at the next call
};

}  // namespace postern::imap::proto

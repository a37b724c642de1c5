// smtp/client/reply_parser.hpp: incremental parser of SMTP server replies (RFC 5321 4.2, 4.5.3.1.5; enhanced
// status codes RFC 2034/3463). Bytes in as they arrive, complete replies out, as the client side needs them
// (pipelined replies, RFC 2920, come out one by one, in order). Pure: no I/O.
// Line ends: CRLF, and a bare LF too, as Postfix's smtp client reads them (smtp_get); a CR elsewhere is text.
// A reply is malformed when a line does not start with three digits (first 2-5) and then SP, '-' or its end,
// or when the lines of one reply carry different codes (Postfix takes the last line's code; we refuse the
// ambiguity). Enhanced codes are taken whenever the text starts with one whose class matches the reply
// (RFC 2034 asks for ENHANCEDSTATUSCODES first; servers send them regardless, so they are tolerated).
// Security: untrusted input (the remote MX). Memory is bounded by Limits; every malformed or overlong reply
// is an Error value, after which the parser stays failed (a desynchronised conversation is not resumed).
// Fuzzed by fuzz/smtp_reply.cpp.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "smtp/proto/reply.hpp"

namespace postern::smtp::client {

struct ReplyLimits {
  size_t max_line = 2048;        // bytes of one line without its line end (Postfix: line_length_limit)
  size_t max_lines = 100;        // lines of one reply (an EHLO reply has a dozen)
  size_t max_total = 64 * 1024;  // bytes of one reply's text
};

class ReplyParser {
 public:
  explicit ReplyParser(ReplyLimits limits = {}) : limits_(limits) {}

  void append(std::string_view bytes) { buf_.append(bytes); }
  // The next complete reply; std::nullopt while more bytes are needed. After an error every call returns it.
  std::optional<Result<proto::Reply>> next();
  // Bytes received after the last complete reply.
  bool empty() const { return pos_ >= buf_.size(); }
  // Drops unread bytes (after the 220 to STARTTLS nothing received before the handshake may be used).
  void clear();

 private:
  Result<proto::Reply> fail(std::string message);

  ReplyLimits limits_;
  std::string buf_;
  size_t pos_ = 0;
  std::optional<Error> error_;
  // The reply being assembled.
  proto::Reply partial_;
  size_t partial_bytes_ = 0;
};

// The enhanced status code at the start of `text` ("5.1.1" in "5.1.1 User unknown"), when its class is
// `klass` ('2', '4' or '5'); empty when there is none. RFC 3463 2: class.subject.detail, 1-3 digits each.
std::string_view enhanced_code(std::string_view text, char klass);

}  // namespace postern::smtp::client

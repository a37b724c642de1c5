// smtp/client/body.hpp: the wire form of a stored message (LF line ends, as the queue holds it) for DATA
// (RFC 5321 4.5.2 dot-stuffing, 4.1.1.4 the ".\r\n" end) or BDAT (RFC 3030: the bytes as they are, CRLF
// line ends, no stuffing). Streams: a message of tens of MB is returned in pieces of at most `piece` bytes
// (plus a few), built in one reused buffer, never copied whole. Pure.
// Line ends: LF becomes CRLF; a CRLF already there stays; a bare CR is left alone (the server side stores
// what it received with CRLF turned into LF). A last line without LF gets CRLF.
// Security: the content is a queued message (any bytes); only the DATA end marker is special, and stuffing
// keeps a "." line inside the content from ending the message early.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace postern::smtp::client {

class BodyEncoder {
 public:
  enum class Mode { kData, kBdat };
  static constexpr size_t kDefaultPiece = 64 * 1024;

  // `content` must stay valid while pieces are taken.
  BodyEncoder(std::string_view content, Mode mode, size_t piece = kDefaultPiece)
      : content_(content), mode_(mode), piece_(piece > 0 ? piece : 1) {}

  // The next piece of the wire form, valid until the next call; empty when all was returned.
  std::string_view next();
  // Bytes of the BDAT form of `content` (what "BDAT <n> LAST" announces).
  static uint64_t bdat_size(std::string_view content);

 private:
  std::string_view content_;
  Mode mode_;
  size_t piece_;
  size_t pos_ = 0;
  bool finished_ = false;
  std::string out_;
};

}  // namespace postern::smtp::client

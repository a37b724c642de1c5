// dkim/canon.hpp: DKIM "relaxed" canonicalization (RFC 6376 3.4.2 headers, 3.4.4 body) of a message as
// Postern stores it: LF line ends, each LF going on the wire as CR LF (so an LF here is a CRLF there, and any
// CR stays an ordinary byte). Pure: no I/O, no OpenSSL; the body is canonicalized in pieces as it is fed,
// so a message of any size is hashed without a copy of it.
// Security: untrusted input (message content); linear time, memory bounded by the output chunk size.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::dkim {

// One header field of a stored message: its name as written (before the ':', white space included) and the
// whole field, from its first byte up to the LF that ends its last (folded) line, that LF excluded.
struct RawField {
  std::string_view name;
  std::string_view text;
};

// The header fields of `message`, in order, and where its body starts: after the first empty line, or at
// the end when there is none (then the body is empty).
std::vector<RawField> split_header(std::string_view message, size_t& body_offset);

// The relaxed form of one field (RFC 6376 3.4.2), without the CR LF that follows it in the hash input:
// the name lower-cased, unfolded and without trailing white space, ':', the value unfolded, every run of
// SP/HTAB one SP, white space at both ends of the value removed.
std::string relaxed_header(std::string_view field);

// The relaxed body (RFC 6376 3.4.4), fed in pieces of any size: white space at line ends removed, runs of
// white space inside lines made one SP, empty lines at the end dropped, CR LF after the last line. An empty
// body (or one of only empty lines) canonicalizes to nothing. The output goes to `sink` in chunks.
class RelaxedBody {
 public:
  using Sink = std::function<void(std::string_view)>;
  explicit RelaxedBody(Sink sink) : sink_(std::move(sink)) {}

  void feed(std::string_view piece);
  // Ends the body: completes the last line and passes what is buffered to the sink.
  void finish();

 private:
  void put(std::string_view bytes);
  void flush();

  Sink sink_;
  std::string out_;                // canonical bytes not passed to the sink yet
  size_t empty_lines_ = 0;         // empty lines seen and not written yet (dropped if the body ends now)
  bool space_ = false;             // white space seen in this line since its last other byte
  bool line_has_content_ = false;  // this line has a byte other than white space
};

}  // namespace postern::dkim

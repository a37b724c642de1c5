// mime/message.hpp: the MIME structure of a message (RFC 2045, 2046, 2047, 2231, 5322) with exact byte
// offsets and line counts, and the decoders IMAP needs (base64, quoted-printable, encoded words, charsets
// to UTF-8). Pure: no I/O.
// Security: untrusted input. Bounded time and memory whatever the message: nesting depth and part count
// are limited (a deeper or further part is treated as an opaque leaf, as Dovecot does); no recursion
// deeper than Limits::max_depth. Fuzzed by fuzz/mime_structure.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::mime {

struct Limits {
  int max_depth = 100;       // nested multiparts / message/rfc822
  size_t max_parts = 10000;  // parts in the whole tree
};

// What a lenient reader (Dovecot 2.3's parser, whose structure this follows byte for byte) sees: a
// message/global part is a leaf; a multipart or message/rfc822 part beyond Limits::max_depth is an
// application/octet-stream leaf; once the message has Limits::max_parts parts no further boundary line is
// recognised (the last part runs on).
struct Part {
  size_t header_begin = 0;  // offset of the part's header in the message
  size_t body_begin = 0;    // first byte after the blank line ending the header (or end, if none)
  size_t body_end = 0;      // end of the part's body (before the CRLF that precedes the next boundary)
  uint64_t body_lines = 0;  // lines in the body, as IMAP counts them
  std::string type = "text", subtype = "plain";             // lower-case
  std::vector<std::pair<std::string, std::string>> params;  // Content-Type parameters, RFC 2231 decoded
  std::string encoding = "7bit";                            // Content-Transfer-Encoding, lower-case
  std::vector<Part> children;  // multipart: the parts; message/rfc822: one child, the embedded message
                               // (its header_begin == this part's body_begin)
};

// Parses the whole structure. Always succeeds: malformed input gives the structure a lenient reader sees.
Part parse(std::string_view message, const Limits& limits = {});

// Decodes a body by its Content-Transfer-Encoding. Nothing for an unknown encoding.
std::optional<std::string> decode_transfer(std::string_view body, std::string_view encoding);
// Decodes RFC 2047 encoded words in a header value into UTF-8 (charsets converted; invalid bytes replaced).
std::string decode_header_value(std::string_view value);
// Converts `text` in `charset` to UTF-8; invalid sequences and unknown charsets give U+FFFD / best effort.
std::string to_utf8(std::string_view text, std::string_view charset);
// Case-folds UTF-8 text for case-insensitive substring search (SEARCH, RFC 9051 6.4.4).
std::string fold_case(std::string_view utf8);

// For SEARCH: the message's header fields decoded to UTF-8 ("Name: value" lines), and the text of its
// text/* parts decoded (transfer encoding and charset) to UTF-8, both case-folded.
std::string searchable_headers(std::string_view message);
std::string searchable_body(std::string_view message, const Limits& limits = {});

// ---- Lower level, shared with imap/proto/message_view.cpp: header fields and structured values as a
// lenient reader (Dovecot's) sees them, so that FETCH renders them as Dovecot does.

// One header field. Lines that begin with white space continue the field before them.
struct HeaderField {
  std::string_view name;      // before the colon, trailing white space removed; the whole line if it has
                              // none; cut at a NUL byte (Dovecot compares names as C strings)
  std::string_view value;     // after the colon and its leading white space; continuation lines joined with
                              // "\n" (CRs before the line ends dropped); NUL bytes kept
  size_t begin = 0, end = 0;  // the field's lines within the header, line end included
  bool colon = false;
  // Where `value` is, when it is not simply a piece of the header (continuation lines that end in CRLF):
  // on the heap, so that moving the field leaves `value` valid.
  std::shared_ptr<std::string> joined;
};
// The fields of a header section (up to the blank line, which is not a field, or the end). The names and
// most values point into `header`, which must outlive them.
std::vector<HeaderField> split_header(std::string_view header);

// Content-Type "type/subtype" (`type_subtype`) or Content-Disposition "token" with parameters. The type
// and subtype keep their case ("" when malformed, as Dovecot); parameters are in the order and form
// IMAP's BODYSTRUCTURE shows: RFC 2231 continuations joined, "name*" values left percent-encoded.
struct StructuredValue {
  bool ok = false;  // false: broken value (what could be read is kept; no parameters then for types)
  std::string type, subtype;
  std::vector<std::pair<std::string, std::string>> params;
};
StructuredValue parse_structured(std::string_view value, bool type_subtype);
// Content-Transfer-Encoding as a single token with nothing after it; nothing when it is not one.
std::optional<std::string> parse_single_token(std::string_view value);
// Content-Language: the language tags.
std::vector<std::string> parse_language(std::string_view value);

// An address-list entry as IMAP's ENVELOPE shows it (RFC 9051 7.5.2): a mailbox, or a group start
// (mailbox = group name, no domain) or group end (all absent). Broken input gives Dovecot's
// MISSING_MAILBOX / MISSING_DOMAIN / SYNTAX_ERROR / INVALID_ROUTE placeholders.
struct Address {
  std::optional<std::string> name, route, mailbox, domain;
};
std::vector<Address> parse_addresses(std::string_view value);

}  // namespace postern::mime

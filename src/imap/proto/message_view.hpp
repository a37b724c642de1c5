// imap/proto/message_view.hpp: what FETCH returns about a message, rendered in IMAP syntax: ENVELOPE,
// BODY / BODYSTRUCTURE (RFC 9051 7.5.2, with extension data), BODY[section] bytes, BINARY[section] and
// BINARY.SIZE (RFC 3516). Output matches Dovecot's byte for byte (tests/e2e compare the two).
// Pure: no I/O. Security: untrusted message; bounded by mime::Limits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "imap/proto/section.hpp"
#include "mime/message.hpp"

namespace postern::imap::proto {

// "(date subject from sender reply-to to cc bcc in-reply-to message-id)" (sender and reply-to default to
// from). `utf8`: 8-bit header bytes may be sent as quoted strings (UTF8=ACCEPT).
std::string envelope(std::string_view message, bool utf8 = false);
// BODYSTRUCTURE (`extended`) or BODY (non-extensible form) of the message.
std::string body_structure(std::string_view message, bool extended, bool utf8 = false);
// The bytes of BODY[section] (before <partial>) as sent: bare LF as CRLF, NUL as 0x80; empty when the part
// does not exist (as Dovecot: "").
std::string section_bytes(std::string_view message, const Section& section);
// Where the message's header ends: after its first empty line (the whole message when it has none). A
// top-level HEADER, HEADER.FIELDS or HEADER.FIELDS.NOT section of the bytes before it is that of the message.
size_t root_header_end(std::string_view message);
// BINARY[path]: the part's body with its transfer encoding undone (for a multipart or message/rfc822 part,
// and for BINARY[] with an empty path, the bytes with every base64 / quoted-printable part decoded and its
// Content-Transfer-Encoding made "binary", as Dovecot does). Nothing when a part has an unknown encoding
// (the caller answers NO [UNKNOWN-CTE]); empty when the part does not exist (as Dovecot). Invalid base64 /
// quoted-printable is decoded leniently (Dovecot answers NO [PARSE]).
std::optional<std::string> binary_bytes(std::string_view message, const std::vector<uint32_t>& path);

}  // namespace postern::imap::proto

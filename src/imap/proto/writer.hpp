// imap/proto/writer.hpp: IMAP response syntax (RFC 9051 section 4, 9): strings as quoted strings when they
// can be, literals otherwise; NIL for an absent nstring. Pure; no I/O.
// Security: the output must never let data (a subject, a mailbox name) end a response line early: CR, LF
// and NUL never appear inside a quoted string.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postern::imap::proto {

// Appends `s` as an IMAP string: "quoted" (with \" and \\ escaped) when it has no CR, LF, NUL and no byte
// >= 0x80 (unless `utf8` is set: after ENABLE UTF8=ACCEPT 8-bit text may be quoted), else as {n}CRLF literal.
void append_string(std::string& out, std::string_view s, bool utf8 = false);
// As append_string, or NIL when `s` is absent.
void append_nstring(std::string& out, const std::optional<std::string>& s, bool utf8 = false);
// Appends an astring: an atom when `s` is a non-empty run of ASTRING-CHARs, else a string.
void append_astring(std::string& out, std::string_view s, bool utf8 = false);
// Appends a literal {n}CRLF followed by the bytes (for BODY[...] data, which may hold anything).
void append_literal(std::string& out, std::string_view s);
// Same, as a literal8 ~{n} (RFC 3516, for BINARY[...] data holding NUL).
void append_literal8(std::string& out, std::string_view s);

}  // namespace postern::imap::proto

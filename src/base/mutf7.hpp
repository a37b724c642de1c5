// base/mutf7.hpp: modified UTF-7 (RFC 3501 5.1.3, RFC 9051 5.1.3), the encoding of non-ASCII mailbox names
// on the IMAP wire and in Dovecot's Maildir++ directory names. Pure.
// Security: untrusted input; decoding rejects every non-canonical form (unterminated shift, "&-" spelled any
// other way, padding bits set, encoded printable ASCII, unpaired surrogates).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postern {

// UTF-8 -> modified UTF-7. Nothing when `utf8` is not valid UTF-8.
std::optional<std::string> mutf7_encode(std::string_view utf8);
// Modified UTF-7 -> UTF-8. Nothing when `mutf7` is not canonical modified UTF-7.
std::optional<std::string> mutf7_decode(std::string_view mutf7);

}  // namespace postern

// auth/sasl_plain.hpp: the SASL PLAIN mechanism (RFC 4616) as the protocols receive it: one base64 line
// ("authzid NUL authcid NUL passwd"). Shared by IMAP AUTHENTICATE, POP3 AUTH and SMTP AUTH. Pure.
// Security: untrusted input; strict base64 (RFC 4648, padding required); the decoded buffer is wiped by
// the caller via PlainCredentials' destructor.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postern::auth {

// Strict base64: nothing for characters outside the alphabet, bad length or misplaced padding.
std::optional<std::string> base64_decode(std::string_view in);

struct PlainCredentials {
  std::string buffer;  // the decoded response; the views point into it
  std::string_view authzid, authcid, password;
  PlainCredentials() = default;
  PlainCredentials(const PlainCredentials&) = delete;
  PlainCredentials& operator=(const PlainCredentials&) = delete;
  ~PlainCredentials();
};

enum class PlainStatus { kOk, kBadBase64, kMalformed };
// Decodes a PLAIN response line ("=" is an empty response).
PlainStatus decode_plain(std::string_view line, PlainCredentials& out);

}  // namespace postern::auth

// smtp/client/capabilities.hpp: what a server announced in its EHLO reply (RFC 5321 4.1.1.1): PIPELINING
// (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), CHUNKING (RFC 3030), STARTTLS
// (RFC 3207), AUTH (RFC 4954, and the obsolete "AUTH=" form), DSN (RFC 3461), ENHANCEDSTATUSCODES
// (RFC 2034), REQUIRETLS (RFC 8689). Keywords are case-insensitive. Pure.
// Security: untrusted input; unknown keywords and malformed parameters are ignored (a SIZE that is not a
// number counts as SIZE without a limit), never an error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/proto/reply.hpp"

namespace postern::smtp::client {

struct Capabilities {
  bool pipelining = false;
  bool size = false;
  uint64_t size_limit = 0;  // SIZE's parameter; 0: none announced (no fixed limit)
  bool eight_bit_mime = false;
  bool smtputf8 = false;
  bool chunking = false;
  bool starttls = false;
  bool dsn = false;
  bool enhanced_status_codes = false;
  bool requiretls = false;
  std::vector<std::string> auth;  // SASL mechanisms, upper case, from AUTH and AUTH= lines

  // From a 250 reply to EHLO: its first line is the server's name, each further line one extension.
  static Capabilities from_ehlo(const proto::Reply& reply);
  bool has_auth(std::string_view mechanism) const;
};

}  // namespace postern::smtp::client

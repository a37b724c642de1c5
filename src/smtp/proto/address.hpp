// smtp/proto/address.hpp: RFC 5321 4.1.2 paths: Reverse-path, Forward-path, Mailbox (RFC 6531 for UTF-8).
// Pure; no I/O. Security: untrusted input; lengths bounded by RFC 5321 4.5.3.1.
#pragma once

#include <string>
#include <string_view>

namespace postern::smtp::proto {

struct Address {
  std::string local;   // unquoted form: "a b"@x has local `a b`
  std::string domain;  // as given ([1.2.3.4] literals keep their brackets); empty: no domain was given
  bool null = false;   // the null reverse-path <>
  bool utf8 = false;   // contains non-ASCII (needs SMTPUTF8)

  // The address as it goes on the wire and in logs, quoting the local part when it needs quotes.
  std::string str() const;
};

enum class AddressError {
  kNone,
  kSyntax,       // 501 5.1.7 / 5.1.3
  kTooLong,      // 501 5.1.3 (local part > 64, domain > 255, path > 256)
  kNeedsUtf8,    // 553 5.6.7: non-ASCII without SMTPUTF8
  kNullNotHere,  // <> where a forward-path is required
};

struct ParsedPath {
  Address address;
  AddressError error = AddressError::kNone;
  std::string_view rest;  // what follows the path (ESMTP parameters), leading spaces removed
};

// Parses a path at the start of `s`. Accepts Postfix's leniencies: a path without angle brackets, spaces
// around it, a missing domain (the caller appends $myorigin). `allow_null` permits <> (MAIL FROM).
// `utf8` permits UTF-8 in local part and domain (SMTPUTF8 was given).
ParsedPath parse_path(std::string_view s, bool allow_null, bool utf8);

bool is_valid_domain(std::string_view domain, bool utf8);

}  // namespace postern::smtp::proto

// smtp/proto/dsn_params.hpp: the values of the SMTP DSN extension's parameters (RFC 3461 4): NOTIFY and ORCPT
// on RCPT, RET and ENVID on MAIL, and the xtext encoding (RFC 3461 4) that ORCPT and ENVID travel in. Shared
// by the server (parsing), the queue file (storage) and the client (sending them on). Pure; no I/O. Security:
// untrusted input; decoded values are refused unless printable US-ASCII (they end up in DSN header fields),
// and the encoded lengths are bounded as RFC 3461 says (ENVID 100, ORCPT 500).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::smtp::proto {

// NOTIFY (RFC 3461 4.1) as a set of bits; 0 when the client sent no NOTIFY.
enum NotifyBits : uint8_t {
  kNotifyNever = 1,  // never alone with the others
  kNotifySuccess = 2,
  kNotifyFailure = 4,
  kNotifyDelay = 8,
};

// RET (RFC 3461 4.3): what a failure DSN returns of the message.
enum class Ret : uint8_t { kUnspecified, kFull, kHdrs };

constexpr size_t kMaxEnvidLength = 100;  // RFC 3461 4.4, encoded
constexpr size_t kMaxOrcptLength = 500;  // RFC 3461 4.2, encoded, with the address type

// xtext (RFC 3461 4): "+" and "=" and every byte outside 33..126 become "+XX" (upper-case hex).
std::string xtext_encode(std::string_view text);
// The decoded text, or nothing when `xtext` is not xtext (a byte outside 33..126, "=", or "+" without two
// hex digits) or decodes to something other than printable US-ASCII (32..126).
std::optional<std::string> xtext_decode(std::string_view xtext);

// "NEVER" or a comma-separated list of SUCCESS, FAILURE, DELAY (any case); nothing when malformed.
std::optional<uint8_t> parse_notify(std::string_view value);
// The canonical form of a non-zero NOTIFY: "NEVER" or e.g. "SUCCESS,FAILURE,DELAY" (in that order).
std::string notify_text(uint8_t notify);

std::optional<Ret> parse_ret(std::string_view value);
std::string_view ret_text(Ret ret);  // "FULL", "HDRS"; empty when unspecified

// An original recipient (ORCPT): the address type (an atom, e.g. "rfc822") and the decoded address.
struct OriginalRecipient {
  std::string type;
  std::string address;

  bool operator==(const OriginalRecipient&) const = default;
};
// ORCPT=<type>;<xtext>: nothing when malformed or longer than kMaxOrcptLength.
std::optional<OriginalRecipient> parse_orcpt(std::string_view value);
// ENVID=<xtext>: nothing when malformed, empty or longer than kMaxEnvidLength.
std::optional<std::string> parse_envid(std::string_view value);

}  // namespace postern::smtp::proto

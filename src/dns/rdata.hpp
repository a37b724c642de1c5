// dns/rdata.hpp: the record types the resolver returns (MX, A/AAAA, TXT, TLSA) and their decoding from DNS
// wire-format RDATA (RFC 1035 3.3.9 MX and 3.3.14 TXT, RFC 3596 AAAA, RFC 6698 2.1 TLSA, RFC 7505 null MX),
// plus the encoding dns::StaticResolver uses to store records. Pure: no I/O, no Asio.
// Security: RDATA comes from DNS servers on the network. Every length is checked against the bytes present;
// names must be uncompressed (libunbound hands them so), at most 255 bytes, and labels are kept as text only
// when they hold letters, digits, '-', '_' (anything else makes the record malformed and it is skipped).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::dns {

// RR types (RFC 1035, 3596, 6698).
enum class Type : uint16_t { kA = 1, kCname = 5, kMx = 15, kTxt = 16, kAaaa = 28, kTlsa = 52 };

// How a lookup ended.
enum class Status {
  kFound,     // at least one record of the type
  kNoData,    // the name exists, without records of that type (NODATA)
  kNxDomain,  // no such name (NXDOMAIN)
  kTempFail,  // SERVFAIL, REFUSED, timeout, malformed answer: try again later (the caller defers)
  kBogus,     // DNSSEC validation failed (only in validated lookups)
};
std::string_view status_name(Status s);

// One MX record. `host` is lower case, without the trailing dot; the root "." is the empty string, so a null
// MX (RFC 7505: the domain accepts no mail) is the single record {0, ""}: see is_null_mx() in resolver.hpp.
struct Mx {
  uint16_t preference = 0;
  std::string host;
  bool operator==(const Mx&) const = default;
};

// One TLSA record (RFC 6698 2.1): certificate usage, selector, matching type, certificate association data.
struct Tlsa {
  uint8_t usage = 0;
  uint8_t selector = 0;
  uint8_t matching_type = 0;
  std::vector<uint8_t> data;
  bool operator==(const Tlsa&) const = default;
};

// A domain name in wire form at the start of `rdata` (labels, no compression) as lower-case text without the
// trailing dot ("" for the root); `used` gets the bytes consumed. Nothing when malformed or truncated.
std::optional<std::string> parse_name(std::string_view rdata, size_t& used);
std::optional<Mx> parse_mx(std::string_view rdata);
// A: 4 bytes, AAAA: 16 bytes, as they are on the wire (network order).
std::optional<std::array<uint8_t, 4>> parse_a(std::string_view rdata);
std::optional<std::array<uint8_t, 16>> parse_aaaa(std::string_view rdata);
// The character-strings of one TXT record, concatenated (as DKIM, SPF and MTA-STS read them).
std::optional<std::string> parse_txt(std::string_view rdata);
std::optional<Tlsa> parse_tlsa(std::string_view rdata);

// Wire forms, for dns::StaticResolver. `name` is text with or without the trailing dot; labels of at most 63
// bytes (longer ones are cut).
std::string encode_name(std::string_view name);
std::string encode_mx(const Mx& mx);
std::string encode_txt(std::string_view text);  // split into character-strings of at most 255 bytes
std::string encode_tlsa(const Tlsa& tlsa);

}  // namespace postern::dns

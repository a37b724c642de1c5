// dns/rdata.cpp: decoding and encoding of record data (see rdata.hpp).
// Security: untrusted bytes; each read is preceded by a length check, and a name longer than 255 bytes or
// with a compression pointer is malformed.
#include "dns/rdata.hpp"

#include <algorithm>

#include "base/strings.hpp"

namespace postern::dns {
namespace {

constexpr size_t kMaxName = 255;

bool label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

uint16_t u16(std::string_view b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) << 8 | static_cast<uint8_t>(b[at + 1]));
}

}  // namespace

std::string_view status_name(Status s) {
  switch (s) {
    case Status::kFound:
      return "found";
    case Status::kNoData:
      return "no data";
    case Status::kNxDomain:
      return "no such domain";
    case Status::kTempFail:
      return "temporary failure";
    case Status::kBogus:
      return "DNSSEC bogus";
  }
  return "?";
}

std::optional<std::string> parse_name(std::string_view rdata, size_t& used) {
  std::string name;
  size_t at = 0;
  while (true) {
    if (at >= rdata.size() || at + 1 > kMaxName) return std::nullopt;
    size_t len = static_cast<uint8_t>(rdata[at]);
    if (len == 0) break;
    if (len > 63 || at + 1 + len > rdata.size()) return std::nullopt;  // a pointer (0xC0) or truncated
    std::string_view label = rdata.substr(at + 1, len);
    if (!std::all_of(label.begin(), label.end(), label_char)) return std::nullopt;
    if (!name.empty()) name += '.';
    name += to_lower(label);
    at += 1 + len;
  }
  used = at + 1;
  return name;
}

std::optional<Mx> parse_mx(std::string_view rdata) {
  if (rdata.size() < 3) return std::nullopt;
  size_t used = 0;
  auto host = parse_name(rdata.substr(2), used);
  if (!host || 2 + used != rdata.size()) return std::nullopt;
  return Mx{u16(rdata, 0), std::move(*host)};
}

std::optional<std::array<uint8_t, 4>> parse_a(std::string_view rdata) {
  if (rdata.size() != 4) return std::nullopt;
  std::array<uint8_t, 4> out;
  std::copy(rdata.begin(), rdata.end(), out.begin());
  return out;
}

std::optional<std::array<uint8_t, 16>> parse_aaaa(std::string_view rdata) {
  if (rdata.size() != 16) return std::nullopt;
  std::array<uint8_t, 16> out;
  std::copy(rdata.begin(), rdata.end(), out.begin());
  return out;
}

std::optional<std::string> parse_txt(std::string_view rdata) {
  if (rdata.empty()) return std::nullopt;
  std::string out;
  for (size_t at = 0; at < rdata.size();) {
    size_t len = static_cast<uint8_t>(rdata[at]);
    if (at + 1 + len > rdata.size()) return std::nullopt;
    out += rdata.substr(at + 1, len);
    at += 1 + len;
  }
  return out;
}

std::optional<Tlsa> parse_tlsa(std::string_view rdata) {
  if (rdata.size() < 4) return std::nullopt;  // RFC 6698 2.1.4: the data is never empty
  Tlsa t{static_cast<uint8_t>(rdata[0]), static_cast<uint8_t>(rdata[1]), static_cast<uint8_t>(rdata[2]), {}};
  t.data.assign(rdata.begin() + 3, rdata.end());
  return t;
}

std::string encode_name(std::string_view name) {
  std::string out;
  for (size_t at = 0; at < name.size();) {
    size_t dot = std::min(name.find('.', at), name.size());
    std::string_view label = name.substr(at, std::min<size_t>(dot - at, 63));
    if (label.empty()) break;
    out += static_cast<char>(label.size());
    out += label;
    at = dot + 1;
  }
  out += '\0';
  return out;
}

std::string encode_mx(const Mx& mx) {
  std::string out{static_cast<char>(mx.preference >> 8), static_cast<char>(mx.preference & 0xff)};
  return out + encode_name(mx.host);
}

std::string encode_txt(std::string_view text) {
  std::string out;
  do {
    std::string_view piece = text.substr(0, 255);
    out += static_cast<char>(piece.size());
    out += piece;
    text.remove_prefix(piece.size());
  } while (!text.empty());
  return out;
}

std::string encode_tlsa(const Tlsa& t) {
  std::string out{static_cast<char>(t.usage), static_cast<char>(t.selector),
                  static_cast<char>(t.matching_type)};
  out.append(t.data.begin(), t.data.end());
  return out;
}

}  // namespace postern::dns

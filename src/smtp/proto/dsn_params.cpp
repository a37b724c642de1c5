// smtp/proto/dsn_params.cpp: RFC 3461 parameter values and xtext (see dsn_params.hpp).
#include "smtp/proto/dsn_params.hpp"

#include <array>
#include <cctype>

#include "base/strings.hpp"

namespace postern::smtp::proto {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;  // RFC 3461 says upper case; Postfix takes both
  return -1;
}

// RFC 5322 atext: the characters of an atom.
bool atext(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

struct NotifyName {
  std::string_view name;
  uint8_t bit;
};
constexpr std::array kNotifyNames = std::to_array<NotifyName>({
    {"NEVER", kNotifyNever},
    {"SUCCESS", kNotifySuccess},
    {"FAILURE", kNotifyFailure},
    {"DELAY", kNotifyDelay},
});

}  // namespace

std::string xtext_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::optional<std::string> xtext_decode(std::string_view xtext) {
  std::string out;
  out.reserve(xtext.size());
  for (size_t i = 0; i < xtext.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(xtext[i]);
    if (c < 33 || c > 126 || c == '=') return std::nullopt;
    if (c == '+') {
      if (xtext.size() - i < 3) return std::nullopt;
      int hi = hex_value(xtext[i + 1]), lo = hex_value(xtext[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<unsigned char>(hi * 16 + lo);
      i += 2;
    }
    if (c < 32 || c > 126) return std::nullopt;
    out += static_cast<char>(c);
  }
  return out;
}

std::optional<uint8_t> parse_notify(std::string_view value) {
  if (value.empty() || value.back() == ',') return std::nullopt;  // split() drops an empty last piece
  uint8_t bits = 0;
  for (std::string_view word : split(value, ',')) {
    uint8_t bit = 0;
    for (const auto& n : kNotifyNames)
      if (iequals(word, n.name)) bit = n.bit;
    if (bit == 0) return std::nullopt;
    bits |= bit;
  }
  // NEVER stands alone (RFC 3461 4.1).
  if (bits == 0 || ((bits & kNotifyNever) && bits != kNotifyNever)) return std::nullopt;
  return bits;
}

std::string notify_text(uint8_t notify) {
  std::string out;
  for (const auto& n : kNotifyNames) {
    if (!(notify & n.bit)) continue;
    if (!out.empty()) out += ',';
    out += n.name;
  }
  return out;
}

std::optional<Ret> parse_ret(std::string_view value) {
  if (iequals(value, "FULL")) return Ret::kFull;
  if (iequals(value, "HDRS")) return Ret::kHdrs;
  return std::nullopt;
}

std::string_view ret_text(Ret ret) {
  switch (ret) {
    case Ret::kFull:
      return "FULL";
    case Ret::kHdrs:
      return "HDRS";
    case Ret::kUnspecified:
      break;
  }
  return "";
}

std::optional<OriginalRecipient> parse_orcpt(std::string_view value) {
  size_t semi = value.find(';');
  if (value.size() > kMaxOrcptLength || semi == 0 || semi == std::string_view::npos) return std::nullopt;
  std::string_view type = value.substr(0, semi);
  for (char c : type)
    if (!atext(c)) return std::nullopt;
  auto address = xtext_decode(value.substr(semi + 1));
  if (!address || address->empty()) return std::nullopt;
  return OriginalRecipient{std::string(type), std::move(*address)};
}

std::optional<std::string> parse_envid(std::string_view value) {
  if (value.empty() || value.size() > kMaxEnvidLength) return std::nullopt;
  return xtext_decode(value);
}

}  // namespace postern::smtp::proto

// base/mutf7.cpp: modified UTF-7 (RFC 3501 5.1.3). Printable ASCII other than '&' stands for itself, '&' is
// "&-", every run of other characters is one "&...-" shift holding its UTF-16 in base64 with ',' for '/' and
// no padding. Decoding accepts only what the encoder writes, so that every name has one spelling.
// Security: untrusted input (IMAP clients, directory names); whole-string, no state kept.

#include "base/mutf7.hpp"

#include <cstdint>

namespace postern {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

bool printable(uint32_t c) {
  return c >= 0x20 && c <= 0x7e;
}

// Value of a modified-base64 character, or -1.
int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == ',') return 63;
  return -1;
}

// The next code point of `s` at `pos` (advanced past it); false on anything that is not well-formed UTF-8
// (overlong forms, surrogates, beyond U+10FFFF, truncated sequences).
bool next_utf8(std::string_view s, size_t& pos, uint32_t& cp) {
  auto b = static_cast<unsigned char>(s[pos]);
  size_t len = 0;
  uint32_t min = 0;
  if (b < 0x80) {
    cp = b;
    ++pos;
    return true;
  } else if (b >= 0xc2 && b <= 0xdf) {
    len = 2, cp = b & 0x1f, min = 0x80;
  } else if (b >= 0xe0 && b <= 0xef) {
    len = 3, cp = b & 0x0f, min = 0x800;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4, cp = b & 0x07, min = 0x10000;
  } else {
    return false;
  }
  if (s.size() - pos < len) return false;
  for (size_t i = 1; i < len; ++i) {
    auto c = static_cast<unsigned char>(s[pos + i]);
    if ((c & 0xc0) != 0x80) return false;
    cp = (cp << 6) | (c & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
  pos += len;
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Appends the base64 of UTF-16 `units` as one shift "&...-".
void append_shift(std::string& out, const std::u16string& units) {
  out += '&';
  uint32_t bits = 0;
  int nbits = 0;
  for (char16_t u : units) {
    bits = (bits << 16) | u;
    nbits += 16;
    while (nbits >= 6) {
      nbits -= 6;
      out += kAlphabet[(bits >> nbits) & 0x3f];
    }
    bits &= (1u << nbits) - 1;
  }
  if (nbits > 0) out += kAlphabet[(bits << (6 - nbits)) & 0x3f];
  out += '-';
}

// Decodes the shift body `b64` (between '&' and '-', not empty) into `out`; false unless canonical.
bool decode_shift(std::string_view b64, std::string& out) {
  uint32_t bits = 0;
  int nbits = 0;
  char16_t high = 0;  // a high surrogate waiting for its low half
  for (char c : b64) {
    int v = base64_value(c);
    if (v < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits < 16) continue;
    nbits -= 16;
    auto u = static_cast<char16_t>((bits >> nbits) & 0xffff);
    bits &= (1u << nbits) - 1;
    if (high != 0) {
      if (u < 0xdc00 || u > 0xdfff) return false;
      append_utf8(out, 0x10000 + ((static_cast<uint32_t>(high - 0xd800) << 10) | (u - 0xdc00)));
      high = 0;
    } else if (u >= 0xd800 && u <= 0xdbff) {
      high = u;
    } else if ((u >= 0xdc00 && u <= 0xdfff) || printable(u)) {
      return false;  // a lone low surrogate, or ASCII that stands for itself
    } else {
      append_utf8(out, u);
    }
  }
  // Whole characters only, and the bits that pad the last base64 character are zero.
  return high == 0 && nbits < 6 && bits == 0;
}

}  // namespace

std::optional<std::string> mutf7_encode(std::string_view utf8) {
  std::string out;
  std::u16string run;  // UTF-16 of the characters waiting for the current shift
  size_t pos = 0;
  while (pos < utf8.size()) {
    uint32_t cp = 0;
    if (!next_utf8(utf8, pos, cp)) return std::nullopt;
    if (printable(cp)) {
      if (!run.empty()) {
        append_shift(out, run);
        run.clear();
      }
      out += static_cast<char>(cp);
      if (cp == '&') out += '-';
    } else if (cp >= 0x10000) {
      run += static_cast<char16_t>(0xd800 + ((cp - 0x10000) >> 10));
      run += static_cast<char16_t>(0xdc00 + ((cp - 0x10000) & 0x3ff));
    } else {
      run += static_cast<char16_t>(cp);
    }
  }
  if (!run.empty()) append_shift(out, run);
  return out;
}

std::optional<std::string> mutf7_decode(std::string_view mutf7) {
  std::string out;
  bool after_shift = false;  // the previous character ended a (non-empty) shift
  size_t pos = 0;
  while (pos < mutf7.size()) {
    char c = mutf7[pos];
    if (!printable(static_cast<unsigned char>(c))) return std::nullopt;
    if (c != '&') {
      out += c;
      ++pos;
      after_shift = false;
      continue;
    }
    size_t end = mutf7.find('-', pos + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end == pos + 1) {
      out += '&';
      after_shift = false;
    } else {
      // Two shifts in a row must have been one.
      if (after_shift || !decode_shift(mutf7.substr(pos + 1, end - pos - 1), out)) return std::nullopt;
      after_shift = true;
    }
    pos = end + 1;
  }
  return out;
}

}  // namespace postern

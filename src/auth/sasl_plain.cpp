#include "auth/sasl_plain.hpp"

#include <string.h>

#include <algorithm>

namespace postern::auth {

std::optional<std::string> base64_decode(std::string_view in) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '=') {
      // Padding only in the last two places.
      if (i + 2 < in.size()) return std::nullopt;
      ++pad;
      continue;
    }
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos || pad) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

PlainCredentials::~PlainCredentials() {
  explicit_bzero(buffer.data(), buffer.size());
}

PlainStatus decode_plain(std::string_view line, PlainCredentials& out) {
  if (line != "=") {
    auto decoded = base64_decode(line);
    if (!decoded) return PlainStatus::kBadBase64;
    out.buffer = std::move(*decoded);
  }
  std::string_view b = out.buffer;
  if (std::count(b.begin(), b.end(), '\0') != 2) return PlainStatus::kMalformed;
  size_t first = b.find('\0'), second = b.find('\0', first + 1);
  out.authzid = b.substr(0, first);
  out.authcid = b.substr(first + 1, second - first - 1);
  out.password = b.substr(second + 1);
  if (out.authcid.empty()) return PlainStatus::kMalformed;
  return PlainStatus::kOk;
}

}  // namespace postern::auth

// smtp/proto/reply.hpp: SMTP replies (RFC 5321 4.2) with enhanced status codes (RFC 3463, RFC 2034).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postern::smtp::proto {

struct Reply {
  int code = 0;
  std::string enhanced;            // "2.1.0"; empty for replies that take none (220, 221 greeting forms, 354)
  std::vector<std::string> lines;  // one or more lines of text

  Reply() = default;
  Reply(int c, std::string_view e, std::string_view text) : code(c), enhanced(e), lines{std::string(text)} {}

  // Wire form: "250-a\r\n250 b\r\n", the enhanced code repeated on every line.
  std::string render() const;
  bool positive() const { return code >= 200 && code < 400; }
};

}  // namespace postern::smtp::proto

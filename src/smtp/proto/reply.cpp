#include "smtp/proto/reply.hpp"

namespace postern::smtp::proto {

std::string Reply::render() const {
  std::string out;
  std::string code_text = std::to_string(code);
  for (size_t i = 0; i < lines.size(); ++i) {
    out += code_text;
    out += (i + 1 < lines.size()) ? '-' : ' ';
    if (!enhanced.empty()) {
      out += enhanced;
      if (!lines[i].empty()) out += ' ';
    }
    out += lines[i];
    out += "\r\n";
  }
  return out;
}

}  // namespace postern::smtp::proto

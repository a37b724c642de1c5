// TEMPORARY STUB (not committed).
#include "imap/proto/message_view.hpp"

#include <fmt/format.h>

#include "base/strings.hpp"
#include "mime/headers.hpp"

namespace postern::imap::proto {
std::string envelope(std::string_view, bool) {
  return "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
}
std::string body_structure(std::string_view m, bool, bool) {
  return fmt::format("(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" {} 1)", m.size());
}
std::string section_bytes(std::string_view m, const Section& s) {
  size_t body = 0;
  mime::parse_header(m, &body);
  switch (s.kind) {
    case Section::Kind::kHeader:
      return std::string(m.substr(0, body));
    case Section::Kind::kText:
      return std::string(m.substr(body));
    case Section::Kind::kHeaderFields: {
      std::string out;
      for (auto& f : mime::parse_header(m))
        for (auto& n : s.fields)
          if (iequals(n, f.name)) out += f.name + ": " + f.value + "\n";
      return out + "\n";
    }
    default:
      return std::string(m);
  }
}
std::optional<std::string> binary_bytes(std::string_view m, const std::vector<uint32_t>&) {
  return std::string(m);
}
}  // namespace postern::imap::proto

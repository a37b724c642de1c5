// imap/proto/section.hpp: a BODY[section] / BINARY[section] specifier (RFC 9051 6.4.5), as parsed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace postern::imap::proto {

struct Section {
  enum class Kind {
    kAll,              // BODY[] or BODY[1.2]: the whole message or the whole part (its body)
    kHeader,           // BODY[HEADER], BODY[1.2.HEADER] (the part must be message/rfc822)
    kHeaderFields,     // BODY[HEADER.FIELDS (A B)]
    kHeaderFieldsNot,  // BODY[HEADER.FIELDS.NOT (A B)]
    kText,             // BODY[TEXT], BODY[1.TEXT]
    kMime,             // BODY[1.MIME]: the part's own MIME header
  };
  std::vector<uint32_t> path;  // part numbers; empty: the message itself
  Kind kind = Kind::kAll;
  std::vector<std::string> fields;  // for kHeaderFields(Not), as the client wrote them
};

}  // namespace postern::imap::proto

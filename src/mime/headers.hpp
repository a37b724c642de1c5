// mime/headers.hpp: RFC 5322 header section: split into fields (unfolding continuation lines) and address
// lists ("Name <a@b>, c@d, group: e@f;") reduced to their addresses. Pure; no I/O.
// Security: untrusted input (message content); linear time; no recursion.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::mime {

struct Field {
  std::string name;   // as written
  std::string value;  // unfolded, leading white space removed
};

// The header fields of `message` (LF or CRLF line ends) and the offset where the body starts; with `only`,
// just the fields of that name (case-insensitive).
std::vector<Field> parse_header(std::string_view message, size_t* body_offset = nullptr,
                                std::string_view only = {});
std::optional<std::string> find_field(const std::vector<Field>& fields, std::string_view name);
// The addr-spec of every mailbox in an address list; comments and display names are dropped.
std::vector<std::string> parse_address_list(std::string_view value);
// An RFC 5322 date-time ("Tue, 1 Jul 2003 10:52:37 +0200", obsolete zones, no weekday, 2-digit years) as
// seconds since the epoch (UTC). Nothing when it cannot be read.
std::optional<int64_t> parse_date(std::string_view value);

}  // namespace postern::mime

// fuzz/mime_headers.cpp: libFuzzer target for message headers and alias files: parse_header, then
// parse_address_list on every field value, and parse_aliases on the same bytes. Fields never hold a line
// break, the body offset stays within the input, and no address comes back empty or padded.

#include <cstdint>
#include <string>
#include <string_view>

#include "delivery/aliases.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "mime/headers.hpp"

namespace {

bool padded(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  return !s.empty() && (space(s.front()) || space(s.back()));
}

}  // namespace

int postern_fuzz_mime_headers(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t body = 0;
  auto fields = postern::mime::parse_header(input, &body);
  POSTERN_FUZZ_CHECK(body <= input.size());
  for (const auto& f : fields) {
    POSTERN_FUZZ_CHECK(f.name.find('\n') == std::string::npos && f.value.find('\n') == std::string::npos);
    for (const std::string& addr : postern::mime::parse_address_list(f.value))
      POSTERN_FUZZ_CHECK(!addr.empty() && !padded(addr));
  }
  if (!fields.empty()) POSTERN_FUZZ_CHECK(postern::mime::find_field(fields, fields.front().name).has_value());
  (void)postern::mime::parse_address_list(input);

  for (const auto& [name, targets] : postern::delivery::parse_aliases(input)) {
    POSTERN_FUZZ_CHECK(!name.empty() && name.find('\n') == std::string::npos);
    for (const std::string& t : targets) POSTERN_FUZZ_CHECK(!t.empty() && t.find('\n') == std::string::npos);
  }
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_mime_headers(data, size);
}
#endif

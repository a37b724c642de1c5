// fuzz/smtp_address.cpp: libFuzzer target for parse_path (RFC 5321 4.1.2, RFC 6531) under the four
// combinations of allow_null and utf8. An accepted path keeps within the RFC 5321 limits, and Address::str()
// round-trips: "<" + str() + ">" parses back to the same local part and domain.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "smtp/proto/address.hpp"

namespace {

using namespace postern::smtp::proto;

bool has_non_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

void check(std::string_view input, bool allow_null, bool utf8) {
  ParsedPath p = parse_path(input, allow_null, utf8);
  if (p.error != AddressError::kNone) return;
  // `rest` points into the input, after the path.
  POSTERN_FUZZ_CHECK(p.rest.data() >= input.data() &&
                     p.rest.data() + p.rest.size() <= input.data() + input.size());
  const Address& a = p.address;
  if (a.null) {
    POSTERN_FUZZ_CHECK(allow_null && a.local.empty() && a.domain.empty() && a.str().empty());
    return;
  }
  POSTERN_FUZZ_CHECK(a.local.size() <= 64 && a.domain.size() <= 255);
  POSTERN_FUZZ_CHECK(!a.local.empty() || !a.domain.empty());
  POSTERN_FUZZ_CHECK(a.utf8 == (has_non_ascii(a.local) || has_non_ascii(a.domain)));
  if (!utf8) POSTERN_FUZZ_CHECK(!a.utf8);
  if (!a.domain.empty()) POSTERN_FUZZ_CHECK(is_valid_domain(a.domain, utf8));

  std::string wire = "<" + a.str() + ">";
  ParsedPath again = parse_path(wire, allow_null, utf8);
  POSTERN_FUZZ_CHECK(again.error == AddressError::kNone);
  POSTERN_FUZZ_CHECK(!again.address.null);
  POSTERN_FUZZ_CHECK(again.address.local == a.local && again.address.domain == a.domain);
  POSTERN_FUZZ_CHECK(again.rest.empty());
}

}  // namespace

int postern_fuzz_smtp_address(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (bool allow_null : {false, true})
    for (bool utf8 : {false, true}) check(input, allow_null, utf8);
  for (bool utf8 : {false, true}) (void)is_valid_domain(input, utf8);
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_smtp_address(data, size);
}
#endif

// fuzz/dns_rdata.cpp: libFuzzer target for the DNS record-data decoders (dns/rdata.hpp). Any bytes, as the
// data of every record type: decoding never reads outside the input; an accepted MX host is at most 253
// characters of lower-case labels (1 to 63 bytes) joined by dots and encodes back to the input; TXT text is
// shorter than its record; TLSA keeps every byte after the three fields.

#include <cstdint>
#include <string>
#include <string_view>

#include "dns/rdata.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"

int postern_fuzz_dns_rdata(const uint8_t* data, size_t size) {
  using namespace postern::dns;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto mx = parse_mx(input)) {
    const std::string& h = mx->host;
    POSTERN_FUZZ_CHECK(h.size() <= 253 && h.find("..") == std::string::npos);
    POSTERN_FUZZ_CHECK(h.empty() || (h.front() != '.' && h.back() != '.'));
    size_t label = 0;
    for (char c : h) {
      POSTERN_FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
      label = c == '.' ? 0 : label + 1;
      POSTERN_FUZZ_CHECK(label <= 63);
    }
    std::string again = encode_mx(*mx);
    POSTERN_FUZZ_CHECK(again.size() == input.size());
    auto back = parse_mx(again);
    POSTERN_FUZZ_CHECK(back && *back == *mx);
  }
  size_t used = 0;
  if (auto name = parse_name(input, used)) POSTERN_FUZZ_CHECK(used <= input.size() && used <= 255);
  if (auto txt = parse_txt(input)) POSTERN_FUZZ_CHECK(txt->size() < input.size());
  if (auto tlsa = parse_tlsa(input)) POSTERN_FUZZ_CHECK(tlsa->data.size() + 3 == input.size());
  POSTERN_FUZZ_CHECK(parse_a(input).has_value() == (size == 4));
  POSTERN_FUZZ_CHECK(parse_aaaa(input).has_value() == (size == 16));
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_dns_rdata(data, size);
}
#endif

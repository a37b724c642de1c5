// fuzz/mutf7.cpp: libFuzzer target for modified UTF-7 (base/mutf7.hpp). Decoding is canonical: whatever
// decodes encodes back to the same bytes. Encoding is lossless: whatever encodes decodes back to the input,
// and the encoded form is printable ASCII.

#include <cstdint>
#include <string>
#include <string_view>

#include "base/mutf7.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"

int postern_fuzz_mutf7(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto utf8 = postern::mutf7_decode(input)) {
    auto back = postern::mutf7_encode(*utf8);
    POSTERN_FUZZ_CHECK(back.has_value() && *back == input);
  }
  if (auto mutf7 = postern::mutf7_encode(input)) {
    for (char c : *mutf7) POSTERN_FUZZ_CHECK(c >= 0x20 && c <= 0x7e);
    auto back = postern::mutf7_decode(*mutf7);
    POSTERN_FUZZ_CHECK(back.has_value() && *back == input);
  }
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_mutf7(data, size);
}
#endif

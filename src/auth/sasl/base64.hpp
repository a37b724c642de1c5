// auth/sasl/base64.hpp: base64 (RFC 4648 4) as SASL exchanges carry it: strict decoding, plain encoding.
// Pure.
// Security: untrusted input; the decoder refuses characters outside the alphabet, a length that is not a
// multiple of 4, misplaced padding and non-zero bits in the last quantum, so one byte string has one form.
// Fuzzed by fuzz/sasl_exchange.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postern::auth::sasl {

std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

}  // namespace postern::auth::sasl

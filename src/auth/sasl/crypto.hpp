// auth/sasl/crypto.hpp: the hashes the SASL mechanisms and password schemes need (SHA-256, HMAC, PBKDF2,
// HMAC-MD5), random bytes, a constant-time comparison and a string that wipes itself. OpenSSL's libcrypto
// only: no sockets, no files, so that the mechanisms build under clang for libFuzzer.
// Security: Secret wipes its bytes (OPENSSL_cleanse) when destroyed; equal() takes the same time for any
// two strings of one length.
#pragma once

#include <string>
#include <string_view>

namespace postern::auth::sasl {

// A password, a decoded SASL response or a derived key: wiped when it goes away. Not copyable.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string s) : s_(std::move(s)) {}
  Secret(Secret&& o) noexcept : s_(std::move(o.s_)) {}
  Secret& operator=(Secret&& o) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret();
  std::string& str() { return s_; }
  std::string_view view() const { return s_; }

 private:
  std::string s_;
};

void wipe(std::string& s);
std::string sha256(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string hmac_md5(std::string_view key, std::string_view data);
// PBKDF2-HMAC-SHA-256 (RFC 5802's Hi()), 32 bytes.
std::string pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations);
std::string random_bytes(size_t n);
// Constant time for equal lengths; different lengths are unequal.
bool equal(std::string_view a, std::string_view b);
std::string hex(std::string_view bytes);

}  // namespace postern::auth::sasl

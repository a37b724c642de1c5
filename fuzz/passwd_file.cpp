// fuzz/passwd_file.cpp: libFuzzer target for Dovecot passwd-file text (auth/passwd_file): parse_passwd_file,
// then format_passwd_entry of every entry parses back to the same entry, and verify_password never accepts
// a password against a value that is no hash.

#include <cstdint>
#include <string>
#include <string_view>

#include "auth/passwd_file.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"

int postern_fuzz_passwd_file(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = postern::auth::parse_passwd_file(input, "users");
  if (!parsed.ok()) {
    POSTERN_FUZZ_CHECK(!parsed.error().message.empty());
    return 0;
  }
  for (const auto& e : *parsed) {
    POSTERN_FUZZ_CHECK(!e.user.empty() && e.user.find(':') == std::string::npos);
    std::string line = postern::auth::format_passwd_entry(e);
    auto again = postern::auth::parse_passwd_file(line, "users");
    POSTERN_FUZZ_CHECK(again.ok() && again->size() == 1);
    const auto& a = again->front();
    POSTERN_FUZZ_CHECK(a.user == e.user && a.password == e.password && a.uid == e.uid && a.gid == e.gid &&
                       a.home == e.home && a.shell == e.shell && a.extra == e.extra);
    // A stored value with a byte outside crypt(3)'s alphabet and no {SCHEME} is no hash: nothing verifies.
    // (A bare value in the alphabet is a legacy {CRYPT} hash, which the fuzzer can solve for "password".)
    bool crypt_alphabet =
        e.password.find_first_not_of("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz$") ==
        std::string::npos;
    if (!crypt_alphabet && !e.password.empty() && e.password.front() != '{')
      POSTERN_FUZZ_CHECK(!postern::auth::verify_password("password", e.password));
  }
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_passwd_file(data, size);
}
#endif

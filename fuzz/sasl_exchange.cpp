// fuzz/sasl_exchange.cpp: libFuzzer target for SASL exchanges (auth/sasl): strict base64 and the
// mechanisms' parsing of client responses, SCRAM's client-first and client-final messages above all.
// Input: lines; the first names the mechanism (a leading '+' sends the second line as the initial
// response); each later line is one client response, base64-encoded by the target when the input starts
// with '~' (so that the fuzzer reaches the mechanism parsers) or passed as sent. Properties: base64
// decoding is strict (what decodes encodes back to the same text), an exchange only succeeds for the one
// known user and password, a finished exchange waits for nothing, and nothing crashes.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/sasl/base64.hpp"
#include "auth/sasl/exchange.hpp"
#include "auth/sasl/scram.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"

namespace {

using namespace postern::auth::sasl;

// One user, "user" with password "pencil", with SCRAM keys of few iterations (speed).
class FuzzCredentials : public Credentials {
 public:
  Verdict verify(std::string_view user, std::string_view password) override {
    if (user == "down") return Verdict::unavailable();
    if (user == "user" && password == "pencil") return Verdict::accepted(std::string(user));
    return Verdict::rejected();
  }
  ScramKeys scram_sha256(std::string_view user) override {
    if (user != "user") return fake_scram_keys("secret", user);
    ScramKeys k = scram_keys("pencil", "salt", 2);
    k.user = "user";
    return k;
  }
  std::optional<Cleartext> cleartext(std::string_view user) override {
    if (user != "user") return std::nullopt;
    return Cleartext{"user", Secret("pencil")};
  }
};

std::vector<std::string_view> lines_of(std::string_view in) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= in.size()) {
    size_t j = in.find('\n', i);
    if (j == std::string_view::npos) j = in.size();
    out.push_back(in.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

int postern_fuzz_sasl_exchange(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  bool encode = !input.empty() && input.front() == '~';
  if (encode) input.remove_prefix(1);
  auto lines = lines_of(input);

  for (std::string_view l : lines) {
    auto decoded = base64_decode(l);
    if (decoded) POSTERN_FUZZ_CHECK(base64_encode(*decoded) == l);
    POSTERN_FUZZ_CHECK(base64_decode(base64_encode(l)) == std::string(l));
  }

  FuzzCredentials credentials;
  Options options;
  options.mechanisms.push_back("CRAM-MD5");
  options.channel_binding = std::string(32, 'x');
  options.hostname = "mail.example.test";
  Exchange exchange(options, credentials);
  std::string_view mechanism = lines.front();
  bool initial = !mechanism.empty() && mechanism.front() == '+';
  if (initial) mechanism.remove_prefix(1);
  size_t next = 1;
  auto wire = [&](std::string_view l) { return encode ? base64_encode(l) : std::string(l); };
  Outcome o;
  if (initial && next < lines.size()) {
    o = exchange.start(mechanism, wire(lines[next++]));
  } else {
    o = exchange.start(mechanism);
  }
  while (o == Outcome::kChallenge && next < lines.size()) {
    POSTERN_FUZZ_CHECK(exchange.waiting() && base64_decode(exchange.challenge()).has_value());
    o = exchange.respond(wire(lines[next++]));
  }
  if (o != Outcome::kChallenge) POSTERN_FUZZ_CHECK(!exchange.waiting());
  if (o == Outcome::kSuccess) POSTERN_FUZZ_CHECK(exchange.user() == "user");
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_sasl_exchange(data, size);
}
#endif

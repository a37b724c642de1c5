// auth/sasl/scram.hpp: SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) with the tls-exporter
// channel binding (RFC 9266), and the stored keys in Dovecot's {SCRAM-SHA-256} form
// ("iterations,base64(salt),base64(StoredKey),base64(ServerKey)"). Pure.
// Security: untrusted input; every field of the client's messages is checked (gs2 header, channel binding,
// nonce, proof length); a client that says "y" (it could bind but thinks the server cannot) while the
// server offers -PLUS is refused (RFC 5802 6: downgrade); an unknown user gets fake keys whose salt
// depends only on the name (fake_scram_keys), so the server-first message does not tell. Fuzzed by
// fuzz/sasl_exchange.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/sasl/mechanism.hpp"

namespace postern::auth::sasl {

constexpr int kScramIterations = 4096;  // RFC 7677's minimum, Dovecot's default

// Derives the stored keys from a password.
ScramKeys scram_keys(std::string_view password, std::string salt, int iterations);
// Dovecot's text form, without the "{SCRAM-SHA-256}" prefix.
std::string format_scram_keys(const ScramKeys& keys);
std::optional<ScramKeys> parse_scram_keys(std::string_view text);
// Whether `password` matches stored keys (a plaintext login against a {SCRAM-SHA-256} entry).
bool scram_verify(std::string_view password, const ScramKeys& keys);
// Keys for a user that has none: the salt is HMAC(secret, name), so it is the same on every attempt.
ScramKeys fake_scram_keys(std::string_view secret, std::string_view user);

class Scram : public Mechanism {
 public:
  // `channel_binding`: the tls-exporter bytes; non-empty when the server offers -PLUS on this connection.
  // `plus`: this is SCRAM-SHA-256-PLUS. `server_nonce`: for tests; empty: random.
  Scram(Credentials& credentials, bool plus, std::string channel_binding, std::string server_nonce = {});
  Step start() override { return {Status::kContinue, ""}; }
  Step step(std::string_view response) override;

 private:
  Step client_first(std::string_view message);
  Step client_final(std::string_view message);

  Credentials& credentials_;
  bool plus_;
  std::string channel_binding_;
  std::string nonce_;  // client nonce + server nonce, once the client-first message was read
  std::string gs2_header_, client_first_bare_, server_first_;
  ScramKeys keys_;
  enum class State { kFirst, kFinal, kVerified, kDone } state_ = State::kFirst;
};

}  // namespace postern::auth::sasl

// auth/sasl/mechanism.hpp: the interface of a SASL mechanism (RFC 4422) as a pure state machine, and of
// the password database it asks (Credentials). A mechanism sees decoded client responses and returns raw
// challenges; auth/sasl/exchange does the base64, the cancel and the choice of mechanism.
// Security: responses are untrusted; a mechanism fails on anything malformed and never says whether the
// user exists. Credentials calls block (password hashing): run mechanism steps off the I/O thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/sasl/crypto.hpp"

namespace postern::auth::sasl {

// What SCRAM-SHA-256 stores for a user (RFC 5802 3): salt, iteration count, StoredKey, ServerKey.
struct ScramKeys {
  std::string user;  // the canonical login name; empty: fake keys (unknown user, or no keys stored)
  int iterations = 0;
  std::string salt;
  Secret stored_key, server_key;
};

// The password database as mechanisms see it. Names are the login names the client sent.
class Credentials {
 public:
  virtual ~Credentials() = default;
  // PLAIN, LOGIN: the canonical login name when `password` is the user's.
  virtual std::optional<std::string> verify(std::string_view user, std::string_view password) = 0;
  // SCRAM-SHA-256: the stored keys, or fake ones (fake_scram_keys) that always look the same for one name.
  virtual ScramKeys scram_sha256(std::string_view user) = 0;
  // CRAM-MD5: the password in clear with the canonical name, when it is stored that way.
  struct Cleartext {
    std::string user;
    Secret password;
  };
  virtual std::optional<Cleartext> cleartext(std::string_view user) = 0;
};

enum class Status {
  kContinue,     // send `challenge`, then give the next response to step()
  kSuccess,      // authenticated: user() is the canonical login name
  kFailed,       // wrong credentials or a malformed response
  kAuthzFailed,  // the authorization identity differs from the login (no master users)
};

struct Step {
  Status status = Status::kFailed;
  std::string challenge;  // raw bytes
};

class Mechanism {
 public:
  virtual ~Mechanism() = default;
  // The client sent no initial response: the first challenge (empty for client-first mechanisms).
  virtual Step start() = 0;
  // One decoded client response (the initial response, when sent, is the first).
  virtual Step step(std::string_view response) = 0;
  const std::string& user() const { return user_; }
  // The name the client gave, right or wrong (for failed-login throttling per user).
  const std::string& attempted() const { return attempted_; }

 protected:
  std::string user_;
  std::string attempted_;
};

}  // namespace postern::auth::sasl

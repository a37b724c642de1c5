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

// The answer of a password check. kUnavailable: the database could not answer (PAM's backend failed, the
// passwd-file is unreadable or broken, the privileged helper is gone). That is not the client's fault: the
// protocols answer with a temporary failure (SMTP 454 4.7.0, IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP])
// and the failed-login throttle does not count it.
struct Verdict {
  enum class Kind { kAccepted, kRejected, kUnavailable };
  Kind kind = Kind::kRejected;
  std::string user;  // kAccepted: the canonical login name

  static Verdict accepted(std::string user) { return {Kind::kAccepted, std::move(user)}; }
  static Verdict rejected() { return {}; }
  static Verdict unavailable() { return {Kind::kUnavailable, {}}; }
  bool ok() const { return kind == Kind::kAccepted; }
};

// What SCRAM-SHA-256 stores for a user (RFC 5802 3): salt, iteration count, StoredKey, ServerKey.
struct ScramKeys {
  std::string user;  // the canonical login name; empty: fake keys (unknown user, or no keys stored)
  int iterations = 0;
  std::string salt;
  Secret stored_key, server_key;
  bool unavailable = false;  // the database could not answer (see Verdict)

  static ScramKeys none_available() {
    ScramKeys k;
    k.unavailable = true;
    return k;
  }
};

// The password database as mechanisms see it. Names are the login names the client sent.
class Credentials {
 public:
  virtual ~Credentials() = default;
  // PLAIN, LOGIN: accepted with the canonical login name when `password` is the user's.
  virtual Verdict verify(std::string_view user, std::string_view password) = 0;
  // SCRAM-SHA-256: the stored keys, or fake ones (fake_scram_keys) that always look the same for one name.
  virtual ScramKeys scram_sha256(std::string_view user) = 0;
  // CRAM-MD5: the password in clear with the canonical name, when it is stored that way.
  struct Cleartext {
    std::string user;
    Secret password;
    bool unavailable = false;  // the database could not answer (see Verdict); user and password are empty

    static Cleartext none_available() {
      Cleartext c;
      c.unavailable = true;
      return c;
    }
  };
  virtual std::optional<Cleartext> cleartext(std::string_view user) = 0;
};

enum class Status {
  kContinue,     // send `challenge`, then give the next response to step()
  kSuccess,      // authenticated: user() is the canonical login name
  kFailed,       // wrong credentials or a malformed response
  kAuthzFailed,  // the authorization identity differs from the login (no master users)
  kUnavailable,  // the password database could not answer (Verdict::Kind::kUnavailable)
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
  // The step that ends with a password check's verdict.
  Step finish(Verdict v) {
    if (v.kind == Verdict::Kind::kUnavailable) return {Status::kUnavailable, ""};
    if (!v.ok()) return {};
    user_ = std::move(v.user);
    return {Status::kSuccess, ""};
  }

  std::string user_;
  std::string attempted_;
};

}  // namespace postern::auth::sasl

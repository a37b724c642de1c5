// auth/sasl/exchange.hpp: one SASL authentication exchange (RFC 4422) as SMTP AUTH, IMAP AUTHENTICATE and
// POP3 AUTH run it: which mechanisms this connection offers, the initial response, base64 in both
// directions, "*" to cancel. Each protocol maps the Outcome to its own replies. Pure: no sockets, no files.
// Mechanism names (auth_mechanisms, Dovecot's names): PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256,
// SCRAM-SHA-256-PLUS.
// Security: untrusted input; strict base64; plaintext mechanisms (PLAIN, LOGIN) are refused when the
// connection does not allow them (no TLS and disable_plaintext_auth / smtpd_tls_auth_only), every
// mechanism when authentication needs TLS (ssl = required); -PLUS is offered only with a tls-exporter
// binding. Decoded responses are wiped. Fuzzed by fuzz/sasl_exchange.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/sasl/mechanism.hpp"
#include "tls/info.hpp"

namespace postern::auth::sasl {

// Whether `name` (any case) is a mechanism this implementation has.
bool known_mechanism(std::string_view name);

struct Options {
  std::vector<std::string> mechanisms = {"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
  bool allowed = true;            // false: no mechanism at all on this connection (ssl = required, no TLS)
  bool plaintext_allowed = true;  // PLAIN and LOGIN (TLS, or plaintext allowed by configuration)
  std::string channel_binding;    // tls-exporter bytes (RFC 9266); empty: no -PLUS
  std::string realm;              // appended as "@realm" to login names without '@' (smtpd_sasl_local_domain)
  std::string hostname;           // in CRAM-MD5's challenge
};

// The mechanisms offered with `options`, in the configured order.
std::vector<std::string> offered_mechanisms(const Options& options);

// `base` (what the configuration allows without TLS) on a connection with `tls`: with TLS every enabled
// mechanism is allowed, and -PLUS when the connection has a tls-exporter binding.
Options for_connection(Options base, const tls::Info& tls);

enum class Outcome {
  kChallenge,         // send challenge() (base64) and pass the client's next line to respond()
  kSuccess,           // authenticated as user()
  kFailed,            // wrong credentials, malformed mechanism data
  kAuthzFailed,       // authorization identity differs from the login
  kCancelled,         // the client sent "*"
  kBadBase64,         // a response that is not strict base64
  kUnknownMechanism,  // not offered on this connection
  kPrivacyRequired,   // offered only over TLS
  kUnavailable,       // the password database could not answer: a temporary failure, not a wrong password
};

class Exchange {
 public:
  Exchange(Options options, Credentials& credentials);
  ~Exchange();

  // Starts `mechanism` (any case); `initial`: the initial response as sent ("=" is an empty one).
  Outcome start(std::string_view mechanism, std::optional<std::string_view> initial = std::nullopt);
  // A client response line while the exchange waits for one.
  Outcome respond(std::string_view line);
  // The base64 challenge to send after kChallenge.
  const std::string& challenge() const { return challenge_; }
  // After kSuccess: the canonical login name; the mechanism's name (upper case) once started.
  const std::string& user() const { return user_; }
  // The name the client gave in the last exchange, right or wrong.
  const std::string& attempted() const { return attempted_; }
  const std::string& mechanism() const { return name_; }
  bool waiting() const { return mechanism_ != nullptr; }

 private:
  class RealmCredentials;
  Outcome run(std::string_view decoded);

  Options options_;
  std::unique_ptr<RealmCredentials> credentials_;
  std::unique_ptr<Mechanism> mechanism_;
  std::string name_, challenge_, user_, attempted_;
};

}  // namespace postern::auth::sasl

// auth/sasl/simple.hpp: the password mechanisms PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login) and
// CRAM-MD5 (RFC 2195). Pure state machines over Credentials.
// Security: untrusted input; PLAIN and LOGIN carry the password in clear (the exchange offers them only
// on encrypted connections unless configured otherwise); the password buffers are wiped.
#pragma once

#include <string>
#include <string_view>

#include "auth/sasl/mechanism.hpp"

namespace postern::auth::sasl {

// A decoded PLAIN response split in its three fields; false when it has not exactly two NULs or no
// authcid. The views point into `decoded`.
struct PlainFields {
  std::string_view authzid, authcid, password;
};
bool split_plain(std::string_view decoded, PlainFields& out);

class Plain : public Mechanism {
 public:
  explicit Plain(Credentials& credentials) : credentials_(credentials) {}
  Step start() override { return {Status::kContinue, ""}; }
  Step step(std::string_view response) override;

 private:
  Credentials& credentials_;
  bool done_ = false;
};

class Login : public Mechanism {
 public:
  explicit Login(Credentials& credentials) : credentials_(credentials) {}
  Step start() override { return {Status::kContinue, "Username:"}; }
  Step step(std::string_view response) override;

 private:
  Credentials& credentials_;
  std::string name_;
  int responses_ = 0;
};

class CramMd5 : public Mechanism {
 public:
  CramMd5(Credentials& credentials, std::string hostname)
      : credentials_(credentials), hostname_(std::move(hostname)) {}
  Step start() override;
  // Fails when called before start(): CRAM-MD5 has no initial response.
  Step step(std::string_view response) override;

 private:
  Credentials& credentials_;
  std::string hostname_;
  std::string challenge_;
};

}  // namespace postern::auth::sasl

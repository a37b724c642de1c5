#include "auth/sasl/scram.hpp"

#include <gtest/gtest.h>

#include "auth/sasl/base64.hpp"

namespace postern::auth::sasl {
namespace {

constexpr std::string_view kSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";

class OneUser : public Credentials {
 public:
  Verdict verify(std::string_view, std::string_view) override { return Verdict::rejected(); }
  ScramKeys scram_sha256(std::string_view user) override {
    if (user != "user") return fake_scram_keys("secret", user);
    ScramKeys k = scram_keys("pencil", *base64_decode(kSalt), 4096);
    k.user = "user";
    return k;
  }
  std::optional<Cleartext> cleartext(std::string_view) override { return std::nullopt; }
};

// RFC 7677 3, the SCRAM-SHA-256 example exchange.
TEST(Scram, Rfc7677Example) {
  OneUser c;
  Scram m(c, false, "", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  Step s = m.step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  ASSERT_EQ(s.status, Status::kContinue);
  EXPECT_EQ(s.challenge,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  s = m.step(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  ASSERT_EQ(s.status, Status::kContinue);
  EXPECT_EQ(s.challenge, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  EXPECT_EQ(m.step("").status, Status::kSuccess);
  EXPECT_EQ(m.user(), "user");
}

TEST(Scram, WrongProofNonceOrBinding) {
  OneUser c;
  const std::string first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
  const std::string nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  for (std::string final_message :
       {"c=biws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=",   // proof
        "c=biws,r=" + nonce + "x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",  // nonce
        "c=eSws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",   // binding "y,"
        "c=biws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ==",   // proof length
        "c=biws,r=" + nonce}) {                                                    // no proof
    Scram m(c, false, "", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    ASSERT_EQ(m.step(first).status, Status::kContinue);
    EXPECT_EQ(m.step(final_message).status, Status::kFailed) << final_message;
  }
}

TEST(Scram, Gs2HeaderAndNames) {
  OneUser c;
  auto first = [&](std::string_view msg, bool plus, std::string binding) {
    Scram m(c, plus, std::move(binding));
    return m.step(msg).status;
  };
  std::string cb(32, 'b');
  EXPECT_EQ(first("n,,n=user,r=abc", false, ""), Status::kContinue);
  EXPECT_EQ(first("y,,n=user,r=abc", false, ""), Status::kContinue);  // server offers no -PLUS: fine
  EXPECT_EQ(first("y,,n=user,r=abc", false, cb), Status::kFailed);    // downgrade (RFC 5802 6)
  EXPECT_EQ(first("p=tls-exporter,,n=user,r=abc", false, cb), Status::kFailed);
  EXPECT_EQ(first("n,,n=user,r=abc", true, cb), Status::kFailed);
  EXPECT_EQ(first("p=tls-unique,,n=user,r=abc", true, cb), Status::kFailed);
  EXPECT_EQ(first("p=tls-exporter,,n=user,r=abc", true, cb), Status::kContinue);
  EXPECT_EQ(first("p=tls-exporter,,n=user,r=abc", true, ""), Status::kFailed);
  EXPECT_EQ(first("n,a=user,n=user,r=abc", false, ""), Status::kContinue);
  EXPECT_EQ(first("n,a=admin,n=user,r=abc", false, ""), Status::kAuthzFailed);
  EXPECT_EQ(first("n,,m=x,n=user,r=abc", false, ""), Status::kFailed);
  EXPECT_EQ(first("n,,n=us=3Der=2C,r=abc", false, ""), Status::kContinue);
  EXPECT_EQ(first("n,,n=us=4er,r=abc", false, ""), Status::kFailed);
  EXPECT_EQ(first("n,,n=,r=abc", false, ""), Status::kFailed);
  EXPECT_EQ(first("n,,n=user,r=", false, ""), Status::kFailed);
  EXPECT_EQ(first("n,,n=user", false, ""), Status::kFailed);
}

// -PLUS: the c= attribute carries the gs2 header and the tls-exporter bytes.
TEST(Scram, PlusChecksChannelBinding) {
  OneUser c;
  std::string cb(32, '\x07');
  auto run = [&](std::string binding_sent) {
    Scram m(c, true, cb, "SNONCE");
    Step s = m.step("p=tls-exporter,,n=user,r=CNONCE");
    if (s.status != Status::kContinue) return s.status;
    std::string without_proof = "c=" + base64_encode("p=tls-exporter,," + binding_sent) + ",r=CNONCESNONCE";
    ScramKeys k = c.scram_sha256("user");
    std::string salted = pbkdf2_sha256("pencil", k.salt, k.iterations);
    std::string client_key = hmac_sha256(salted, "Client Key");
    std::string auth_message = "n=user,r=CNONCE," + s.challenge + "," + without_proof;
    std::string signature = hmac_sha256(sha256(client_key), auth_message);
    std::string proof = client_key;
    for (size_t i = 0; i < proof.size(); ++i) proof[i] = static_cast<char>(proof[i] ^ signature[i]);
    s = m.step(without_proof + ",p=" + base64_encode(proof));
    if (s.status != Status::kContinue) return s.status;
    return m.step("").status;
  };
  EXPECT_EQ(run(cb), Status::kSuccess);
  EXPECT_EQ(run(std::string(32, '\x08')), Status::kFailed);  // another TLS connection's binding
}

TEST(Scram, UnknownUserLooksTheSame) {
  OneUser c;
  auto salt_line = [&](std::string_view user) {
    Scram m(c, false, "", "N");
    std::string s = m.step("n,,n=" + std::string(user) + ",r=abc").challenge;
    return s.substr(s.find(",s="));
  };
  EXPECT_EQ(salt_line("nobody"), salt_line("nobody"));
  EXPECT_NE(salt_line("nobody"), salt_line("someone"));
  EXPECT_EQ(salt_line("nobody").size(), salt_line("user").size());
  EXPECT_NE(fake_scram_keys("a", "x").salt, fake_scram_keys("b", "x").salt);
}

TEST(Scram, DovecotStoredForm) {
  ScramKeys k = scram_keys("pencil", *base64_decode(kSalt), 4096);
  std::string text = format_scram_keys(k);
  EXPECT_TRUE(text.starts_with("4096,W22ZaJ0SNY7soEsUEjb6gQ==,")) << text;
  auto back = parse_scram_keys(text);
  ASSERT_TRUE(back);
  EXPECT_TRUE(scram_verify("pencil", *back));
  EXPECT_FALSE(scram_verify("pencil2", *back));
  EXPECT_FALSE(parse_scram_keys("4096,W22ZaJ0SNY7soEsUEjb6gQ==,AAAA,AAAA"));
  EXPECT_FALSE(parse_scram_keys("x,W22ZaJ0SNY7soEsUEjb6gQ==," + text.substr(text.find(',', 5) + 1)));
}

}  // namespace
}  // namespace postern::auth::sasl

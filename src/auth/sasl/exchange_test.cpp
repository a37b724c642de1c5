#include "auth/sasl/exchange.hpp"

#include <gtest/gtest.h>

#include "auth/sasl/base64.hpp"
#include "auth/sasl/scram.hpp"
#include "auth/sasl/simple.hpp"

namespace postern::auth::sasl {
namespace {

// "user" / "pencil" (RFC 7677's example, its salt and iteration count), "tim" / "tanstaaftanstaaf" in
// clear (RFC 2195's CRAM-MD5 example).
class TestCredentials : public Credentials {
 public:
  Verdict verify(std::string_view user, std::string_view password) override {
    last_user = user;
    if (down) return Verdict::unavailable();
    if ((user == "user" && password == "pencil") || (user == "tim" && password == "tanstaaftanstaaf"))
      return Verdict::accepted(std::string(user));
    return Verdict::rejected();
  }
  ScramKeys scram_sha256(std::string_view user) override {
    if (down) return ScramKeys::none_available();
    if (user != "user") return fake_scram_keys("secret", user);
    ScramKeys k = scram_keys("pencil", *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
    k.user = "user";
    return k;
  }
  std::optional<Cleartext> cleartext(std::string_view user) override {
    if (down) return Cleartext::none_available();
    if (user != "tim") return std::nullopt;
    return Cleartext{"tim", Secret("tanstaaftanstaaf")};
  }
  std::string last_user;
  bool down = false;  // the database cannot answer
};

std::string b64(std::string_view s) {
  return base64_encode(s);
}

TEST(Base64, StrictAndRoundTrip) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(*base64_decode("Zm9vYg=="), "foob");
  EXPECT_FALSE(base64_decode("Zm9vYg="));    // length
  EXPECT_FALSE(base64_decode("Zm9=Yg=="));   // padding inside
  EXPECT_FALSE(base64_decode("Zm9vYh=="));   // non-zero unused bits
  EXPECT_FALSE(base64_decode("Zm9v Yg=="));  // space
  EXPECT_FALSE(base64_decode("Zm9-"));       // URL alphabet
}

TEST(Exchange, PlainRfc4616) {
  TestCredentials c;
  Exchange e({}, c);
  EXPECT_EQ(e.start("plain", b64(std::string("\0user\0pencil", 12))), Outcome::kSuccess);
  EXPECT_EQ(e.user(), "user");
  EXPECT_EQ(e.mechanism(), "PLAIN");
  // authzid equal to authcid is fine; a different one is refused without asking the password database.
  EXPECT_EQ(e.start("PLAIN", b64(std::string("user\0user\0pencil", 16))), Outcome::kSuccess);
  c.last_user.clear();
  EXPECT_EQ(e.start("PLAIN", b64(std::string("admin\0user\0pencil", 17))), Outcome::kAuthzFailed);
  EXPECT_EQ(c.last_user, "");
  EXPECT_EQ(e.start("PLAIN", b64(std::string("\0user\0wrong", 11))), Outcome::kFailed);
  EXPECT_EQ(e.start("PLAIN", b64("user pencil")), Outcome::kFailed);
  EXPECT_EQ(e.start("PLAIN", "="), Outcome::kFailed);
  EXPECT_EQ(e.start("PLAIN", "AHVzZXIAcGVuY2ls="), Outcome::kBadBase64);
  // Without an initial response: an empty challenge, then the response line.
  EXPECT_EQ(e.start("PLAIN"), Outcome::kChallenge);
  EXPECT_EQ(e.challenge(), "");
  EXPECT_EQ(e.respond(b64(std::string("\0user\0pencil", 12))), Outcome::kSuccess);
}

TEST(Exchange, LoginAndCancel) {
  TestCredentials c;
  Exchange e({}, c);
  ASSERT_EQ(e.start("LOGIN"), Outcome::kChallenge);
  EXPECT_EQ(e.challenge(), b64("Username:"));
  ASSERT_EQ(e.respond(b64("user")), Outcome::kChallenge);
  EXPECT_EQ(e.challenge(), b64("Password:"));
  EXPECT_EQ(e.respond(b64("pencil")), Outcome::kSuccess);
  // RFC 4954 4: the initial response of LOGIN is the user name.
  ASSERT_EQ(e.start("LOGIN", b64("user")), Outcome::kChallenge);
  EXPECT_EQ(e.respond(b64("wrong")), Outcome::kFailed);
  EXPECT_FALSE(e.waiting());
  ASSERT_EQ(e.start("LOGIN"), Outcome::kChallenge);
  EXPECT_EQ(e.respond("*"), Outcome::kCancelled);
  EXPECT_FALSE(e.waiting());
  ASSERT_EQ(e.start("LOGIN"), Outcome::kChallenge);
  EXPECT_EQ(e.respond("dXNlcg"), Outcome::kBadBase64);
}

TEST(Exchange, OfferedMechanisms) {
  TestCredentials c;
  Options o;
  o.plaintext_allowed = false;
  EXPECT_EQ(offered_mechanisms(o), (std::vector<std::string>{"SCRAM-SHA-256"}));
  Exchange e(o, c);
  EXPECT_EQ(e.start("PLAIN", b64(std::string("\0user\0pencil", 12))), Outcome::kPrivacyRequired);
  EXPECT_EQ(e.start("SCRAM-SHA-256-PLUS"), Outcome::kUnknownMechanism);
  EXPECT_EQ(e.start("CRAM-MD5"), Outcome::kUnknownMechanism);  // not enabled
  EXPECT_EQ(e.start("X-UNKNOWN"), Outcome::kUnknownMechanism);
  tls::Info tls;
  tls.active = true;
  tls.exporter = std::string(32, 'e');
  EXPECT_EQ(offered_mechanisms(for_connection(o, tls)),
            (std::vector<std::string>{"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}));
  o.allowed = false;  // ssl = required without TLS
  EXPECT_TRUE(offered_mechanisms(o).empty());
  Exchange none(o, c);
  EXPECT_EQ(none.start("SCRAM-SHA-256"), Outcome::kPrivacyRequired);
}

TEST(Exchange, RealmQualifiesBareNames) {
  TestCredentials c;
  Options o;
  o.realm = "example.test";
  Exchange e(o, c);
  e.start("PLAIN", b64(std::string("\0bob\0x", 6)));
  EXPECT_EQ(c.last_user, "bob@example.test");
  e.start("PLAIN", b64(std::string("\0bob@other.test\0x", 17)));
  EXPECT_EQ(c.last_user, "bob@other.test");
}

TEST(Exchange, CramMd5Rfc2195) {
  TestCredentials c;
  CramMd5 m(c, "postoffice.reston.mci.net");
  // RFC 2195's example, with its challenge: HMAC-MD5 of it under the password.
  std::string challenge = "<1896.697170952@postoffice.reston.mci.net>";
  EXPECT_EQ(hex(hmac_md5("tanstaaftanstaaf", challenge)), "b913a602c7eda7a495b4e6e7334d3890");
  ASSERT_EQ(m.start().status, Status::kContinue);
  EXPECT_EQ(m.step("tim b913a602c7eda7a495b4e6e7334d3890").status, Status::kFailed);  // another challenge
  CramMd5 fresh(c, "h");
  EXPECT_EQ(fresh.step("tim 00").status, Status::kFailed);  // no initial response
  Options o;
  o.mechanisms = {"CRAM-MD5"};
  Exchange e(o, c);
  ASSERT_EQ(e.start("CRAM-MD5"), Outcome::kChallenge);
  std::string ch = *base64_decode(e.challenge());
  EXPECT_EQ(e.respond(b64("tim " + hex(hmac_md5("tanstaaftanstaaf", ch)))), Outcome::kSuccess);
  EXPECT_EQ(e.user(), "tim");
  ASSERT_EQ(e.start("CRAM-MD5"), Outcome::kChallenge);
  ch = *base64_decode(e.challenge());
  EXPECT_EQ(e.respond(b64("user " + hex(hmac_md5("pencil", ch)))), Outcome::kFailed);  // no clear password
}

// A password database that cannot answer ends every mechanism with kUnavailable, never kFailed: the
// protocols then give a temporary failure (SMTP 454 4.7.0) instead of calling the password wrong.
TEST(Exchange, DatabaseUnavailable) {
  TestCredentials c;
  c.down = true;
  Options o;
  o.mechanisms = {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"};
  Exchange e(o, c);
  EXPECT_EQ(e.start("PLAIN", b64(std::string("\0user\0pencil", 12))), Outcome::kUnavailable);
  EXPECT_EQ(e.start("LOGIN", b64("user")), Outcome::kChallenge);
  EXPECT_EQ(e.respond(b64("pencil")), Outcome::kUnavailable);
  ASSERT_EQ(e.start("CRAM-MD5"), Outcome::kChallenge);
  EXPECT_EQ(e.respond(b64("tim 00")), Outcome::kUnavailable);
  EXPECT_EQ(e.start("SCRAM-SHA-256", b64("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")), Outcome::kUnavailable);
  EXPECT_FALSE(e.waiting());
  c.down = false;
  EXPECT_EQ(e.start("PLAIN", b64(std::string("\0user\0pencil", 12))), Outcome::kSuccess);
}

}  // namespace
}  // namespace postern::auth::sasl

#include "smtp/proto/dsn_params.hpp"

#include <gtest/gtest.h>

namespace postern::smtp::proto {
namespace {

TEST(Xtext, EncodesWhatMustBeEncoded) {
  EXPECT_EQ(xtext_encode("user@example.org"), "user@example.org");
  EXPECT_EQ(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
  EXPECT_EQ(xtext_encode(std::string_view("\0\x7f\xff~!", 5)), "+00+7F+FF~!");
}

TEST(Xtext, RoundTripsEveryPrintableCharacter) {
  std::string all;
  for (int c = 32; c <= 126; ++c) all += static_cast<char>(c);
  std::string encoded = xtext_encode(all);
  for (unsigned char c : encoded) EXPECT_TRUE(c >= 33 && c <= 126 && c != '=') << c;
  EXPECT_EQ(xtext_decode(encoded), all);
}

TEST(Xtext, DecodeRefusesWhatIsNotXtext) {
  EXPECT_EQ(xtext_decode("a+2Bb+2bc"), "a+b+c");  // lower-case hex taken, as Postfix does
  EXPECT_EQ(xtext_decode(""), "");
  EXPECT_FALSE(xtext_decode("a b"));      // space is not an xchar
  EXPECT_FALSE(xtext_decode("a=b"));      // nor "="
  EXPECT_FALSE(xtext_decode("a+2"));      // "+" needs two hex digits
  EXPECT_FALSE(xtext_decode("a+"));       //
  EXPECT_FALSE(xtext_decode("a+G0"));     //
  EXPECT_FALSE(xtext_decode("a+0D+0A"));  // decodes to CR LF: never into a DSN header
  EXPECT_FALSE(xtext_decode("+00"));
  EXPECT_FALSE(xtext_decode("+C3+A9"));  // 8-bit
  EXPECT_FALSE(xtext_decode("caf\xc3\xa9"));
}

TEST(DsnParams, Notify) {
  EXPECT_EQ(parse_notify("NEVER"), kNotifyNever);
  EXPECT_EQ(parse_notify("never"), kNotifyNever);
  EXPECT_EQ(parse_notify("FAILURE"), kNotifyFailure);
  EXPECT_EQ(parse_notify("delay,Success,FAILURE"), kNotifySuccess | kNotifyFailure | kNotifyDelay);
  for (const char* bad : {"", "NEVER,SUCCESS", "FAILURE,NEVER", "SUCCESS,", ",SUCCESS", "SUCCESS,,DELAY",
                          "ALWAYS", "SUCCESS FAILURE", "SUCCES"})
    EXPECT_FALSE(parse_notify(bad)) << bad;
  EXPECT_EQ(notify_text(kNotifyNever), "NEVER");
  EXPECT_EQ(notify_text(kNotifyDelay | kNotifySuccess), "SUCCESS,DELAY");
  for (uint8_t bits : {1, 2, 4, 8, 6, 10, 12, 14}) EXPECT_EQ(parse_notify(notify_text(bits)), bits) << +bits;
}

TEST(DsnParams, Ret) {
  EXPECT_EQ(parse_ret("FULL"), Ret::kFull);
  EXPECT_EQ(parse_ret("hdrs"), Ret::kHdrs);
  EXPECT_FALSE(parse_ret("HEADERS"));
  EXPECT_FALSE(parse_ret(""));
  EXPECT_EQ(ret_text(Ret::kHdrs), "HDRS");
  EXPECT_EQ(ret_text(Ret::kUnspecified), "");
}

TEST(DsnParams, Orcpt) {
  auto o = parse_orcpt("rfc822;b+2Bx@elsewhere.example");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->type, "rfc822");
  EXPECT_EQ(o->address, "b+x@elsewhere.example");
  EXPECT_EQ(parse_orcpt("rfc822;a;b")->address, "a;b");  // only the first ";" separates
  for (const char* bad :
       {"rfc822", ";a@b", "rfc822;", "rfc 822;a@b", "rfc822;a+0Ab", "rfc822;a b", "rfc(822);x"})
    EXPECT_FALSE(parse_orcpt(bad)) << bad;
  std::string longest = "rfc822;" + std::string(kMaxOrcptLength - 7, 'a');
  EXPECT_TRUE(parse_orcpt(longest));
  EXPECT_FALSE(parse_orcpt(longest + "a"));
}

TEST(DsnParams, Envid) {
  EXPECT_EQ(parse_envid("QQ314159+2Bx"), "QQ314159+x");
  EXPECT_FALSE(parse_envid(""));
  EXPECT_FALSE(parse_envid("a+0D"));
  EXPECT_TRUE(parse_envid(std::string(kMaxEnvidLength, 'x')));
  EXPECT_FALSE(parse_envid(std::string(kMaxEnvidLength + 1, 'x')));
  // The limit is on the encoded form: 34 encoded characters are 102 on the wire.
  EXPECT_FALSE(parse_envid(xtext_encode(std::string(34, ' '))));
}

}  // namespace
}  // namespace postern::smtp::proto

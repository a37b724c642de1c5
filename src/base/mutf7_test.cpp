// base/mutf7_test.cpp: modified UTF-7 against RFC 3501 5.1.3's examples, names Dovecot writes, and every
// non-canonical spelling the decoder must refuse.

#include "base/mutf7.hpp"

#include <string>

#include <gtest/gtest.h>

namespace postern {
namespace {

void expect_pair(const std::string& utf8, const std::string& mutf7) {
  auto enc = mutf7_encode(utf8);
  ASSERT_TRUE(enc.has_value()) << utf8;
  EXPECT_EQ(*enc, mutf7);
  auto dec = mutf7_decode(mutf7);
  ASSERT_TRUE(dec.has_value()) << mutf7;
  EXPECT_EQ(*dec, utf8);
}

TEST(Mutf7, RfcExamples) {
  expect_pair("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
  expect_pair("~peter/mail/日本語/台北", "~peter/mail/&ZeVnLIqe-/&U,BTFw-");
}

TEST(Mutf7, Ascii) {
  expect_pair("", "");
  expect_pair("INBOX", "INBOX");
  expect_pair("Sent Items", "Sent Items");
  expect_pair(" !\"#$%'()*+,-./:;<=>?@[\\]^_`{|}~", " !\"#$%'()*+,-./:;<=>?@[\\]^_`{|}~");
  expect_pair("&", "&-");
  expect_pair("a&b&&", "a&-b&-&-");
  expect_pair("-&-", "-&--");
}

TEST(Mutf7, NonAscii) {
  expect_pair("ä", "&AOQ-");
  expect_pair("Entwürfe", "Entw&APw-rfe");
  expect_pair("Gelöschte Elemente", "Gel&APY-schte Elemente");
  expect_pair("äöü", "&AOQA9gD8-");
  expect_pair("äö", "&AOQA9g-");
  expect_pair("Черновики", "&BCcENQRABD0EPgQyBDgEOgQ4-");
  expect_pair("ä&ö", "&AOQ-&-&APY-");
  expect_pair("€", "&IKw-");
  expect_pair("\xef\xbf\xbf", "&,,8-");  // U+FFFF uses ','
  expect_pair("😀", "&2D3eAA-");          // U+1F600 as a surrogate pair
  expect_pair("a😀b", "a&2D3eAA-b");
  expect_pair("\x7f", "&AH8-");  // controls are shifted too
  expect_pair("\t", "&AAk-");
  expect_pair(std::string("\0", 1), "&AAA-");
}

TEST(Mutf7, EncodeRefusesInvalidUtf8) {
  for (const char* bad : {"\x80", "\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "\xf8\x88\x80\x80\x80", "a\xffz", "\xe2\x82", "\xf0\x9f\x98"})
    EXPECT_FALSE(mutf7_encode(bad).has_value()) << bad;
}

TEST(Mutf7, DecodeRefusesNonCanonical) {
  for (const char* bad : {
           "&",           // unterminated
           "&AOQ",        // unterminated shift
           "a&Jjo!",      // '!' inside a shift
           "&AGE-",       // 'a' encoded
           "&ACY-",       // '&' encoded instead of "&-"
           "&AOQ-&APY-",  // two shifts in a row: must be "&AOQA9g-"
           "&AOR-",       // padding bits set
           "&AOQA-",      // a base64 character too many
           "&AO-",        // not a whole UTF-16 unit
           "&2D0-",       // high surrogate alone
           "&2D3YPQ-",    // high surrogate followed by another high surrogate
           "&3gA-",       // low surrogate alone
           "&AOQ=-",      // padding
           "&AOQ/-",      // '/' of standard base64
       })
    EXPECT_FALSE(mutf7_decode(bad).has_value()) << bad;
  EXPECT_FALSE(mutf7_decode("\xc3\xa4").has_value());  // raw UTF-8
  EXPECT_FALSE(mutf7_decode("a\tb").has_value());      // raw control
  EXPECT_FALSE(mutf7_decode("a\x7f").has_value());
  EXPECT_FALSE(mutf7_decode(std::string("a\0b", 3)).has_value());
}

TEST(Mutf7, DecodeAcceptsNeighbours) {
  EXPECT_EQ(mutf7_decode("&Jjo--").value_or("?"), "\xe2\x98\xba-");
  EXPECT_EQ(mutf7_decode("&-&AOQ-").value_or("?"), "&ä");
  EXPECT_EQ(mutf7_decode("&AOQ-&-").value_or("?"), "ä&");
  EXPECT_EQ(mutf7_decode("&AOQ-x&APY-").value_or("?"), "äxö");
}

}  // namespace
}  // namespace postern

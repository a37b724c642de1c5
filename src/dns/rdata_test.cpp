#include "dns/rdata.hpp"

#include <gtest/gtest.h>

namespace postern::dns {
namespace {

using namespace std::string_literals;

TEST(Rdata, MxHostIsLowerCaseWithoutTheDot) {
  auto mx = parse_mx(
      "\x00\x0a\x04Mail\x07"
      "Example\x03org\x00"s);
  ASSERT_TRUE(mx);
  EXPECT_EQ(mx->preference, 10);
  EXPECT_EQ(mx->host, "mail.example.org");
}

TEST(Rdata, NullMxIsTheEmptyHost) {
  auto mx = parse_mx("\x00\x00\x00"s);
  ASSERT_TRUE(mx);
  EXPECT_EQ(*mx, (Mx{0, ""}));
}

TEST(Rdata, MalformedMxIsRefused) {
  EXPECT_FALSE(parse_mx(""));
  EXPECT_FALSE(parse_mx("\x00\x0a"s));               // no name
  EXPECT_FALSE(parse_mx("\x00\x0a\xc0\x0c"s));       // a compression pointer
  EXPECT_FALSE(parse_mx("\x00\x0a\x01x\x00junk"s));  // bytes after the name
  EXPECT_FALSE(
      parse_mx("\x00\x0a\x03"
               "a b\x00"s));                                                // a space in a label
  EXPECT_FALSE(parse_mx("\x00\x0a\x40" + std::string(64, 'a') + "\x00"s));  // a label over 63 bytes
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += "\x3f" + std::string(63, 'a');  // 320 bytes
  EXPECT_FALSE(parse_mx("\x00\x0a"s + long_name + "\x00"s));
}

TEST(Rdata, EveryTruncationOfAnMxIsRefused) {
  std::string wire = encode_mx(Mx{5, "mx1.example.net"});
  ASSERT_EQ(parse_mx(wire), (Mx{5, "mx1.example.net"}));
  for (size_t cut = 0; cut < wire.size(); ++cut) EXPECT_FALSE(parse_mx(wire.substr(0, cut))) << cut;
}

TEST(Rdata, NameOf255BytesIsTheLongestAccepted) {
  // 3 labels of 63 + one of 61: 64*3 + 62 + 1 = 255 bytes.
  std::string name = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                     std::string(61, 'd');
  std::string wire = encode_name(name);
  ASSERT_EQ(wire.size(), 255u);
  size_t used = 0;
  EXPECT_EQ(parse_name(wire, used), name);
  EXPECT_EQ(used, 255u);
  std::string longer = encode_name(name + "e");
  EXPECT_FALSE(parse_name(longer, used));
}

TEST(Rdata, Addresses) {
  EXPECT_EQ(parse_a("\x7f\x00\x00\x01"s), (std::array<uint8_t, 4>{127, 0, 0, 1}));
  EXPECT_FALSE(parse_a("\x7f\x00\x00"s));
  EXPECT_FALSE(parse_a("\x7f\x00\x00\x01\x01"s));
  std::string v6(16, '\0');
  v6[15] = 1;
  auto a = parse_aaaa(v6);
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)[15], 1);
  EXPECT_FALSE(parse_aaaa(v6.substr(0, 15)));
}

TEST(Rdata, TxtStringsAreConcatenated) {
  EXPECT_EQ(parse_txt("\x05v=DKI\x04M1; \x00\x03k=x"s), "v=DKIM1; k=x");
  EXPECT_EQ(parse_txt("\x00"s), "");
  EXPECT_FALSE(parse_txt(""));
  std::string wire = encode_txt(std::string(600, 'p'));
  EXPECT_EQ(wire.size(), 603u);  // 255 + 255 + 90, each with its length byte
  EXPECT_EQ(parse_txt(wire), std::string(600, 'p'));
  for (size_t cut = 1; cut < wire.size(); ++cut) {
    if (cut == 256 || cut == 512) continue;  // a cut between two strings is a shorter, valid record
    EXPECT_FALSE(parse_txt(wire.substr(0, cut))) << cut;
  }
}

TEST(Rdata, Tlsa) {
  Tlsa t{3, 1, 1, {0xde, 0xad, 0xbe, 0xef}};
  std::string wire = encode_tlsa(t);
  EXPECT_EQ(wire, "\x03\x01\x01\xde\xad\xbe\xef"s);
  EXPECT_EQ(parse_tlsa(wire), t);
  EXPECT_FALSE(parse_tlsa("\x03\x01\x01"s));  // no association data
  EXPECT_FALSE(parse_tlsa("\x03\x01"s));
}

TEST(Rdata, EncodeNameTakesTheTrailingDot) {
  EXPECT_EQ(encode_name("a.b."),
            "\x01"
            "a\x01"
            "b\x00"s);
  EXPECT_EQ(encode_name("a.b"),
            "\x01"
            "a\x01"
            "b\x00"s);
  EXPECT_EQ(encode_name(""), "\x00"s);
  EXPECT_EQ(encode_name("."), "\x00"s);
}

}  // namespace
}  // namespace postern::dns

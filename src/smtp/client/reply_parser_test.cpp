#include "smtp/client/reply_parser.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace postern::smtp::client {
namespace {

// Every reply of `input` rendered back ("250-a\r\n250 b\r\n"), then "error: ..." if the parser failed, fed
// whole; also fed split at every byte boundary, which must give the same.
std::string transcript(std::string_view input, ReplyLimits limits = {}) {
  auto run = [&](const std::vector<std::string_view>& pieces) {
    ReplyParser p(limits);
    std::string out;
    for (std::string_view piece : pieces) {
      p.append(piece);
      while (auto r = p.next()) {
        if (!r->ok()) return out + "error: " + r->error().message;
        out += (*r)->render();
      }
    }
    return out;
  };
  std::string whole = run({input});
  for (size_t cut = 1; cut < input.size(); ++cut) {
    EXPECT_EQ(run({input.substr(0, cut), input.substr(cut)}), whole) << "split at " << cut;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  EXPECT_EQ(run(bytes), whole) << "byte by byte";
  return whole;
}

TEST(ReplyParser, SingleAndMultiLine) {
  EXPECT_EQ(transcript("220 mx.example ESMTP\r\n"), "220 mx.example ESMTP\r\n");
  EXPECT_EQ(transcript("250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"),
            "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
  // Pipelined replies come out one by one, in order.
  EXPECT_EQ(transcript("250 2.1.0 Ok\r\n550 5.1.1 No such user\r\n354 Go ahead\r\n"),
            "250 2.1.0 Ok\r\n550 5.1.1 No such user\r\n354 Go ahead\r\n");
  // A bare code is a complete reply with empty text.
  EXPECT_EQ(transcript("250\r\n"), "250 \r\n");
}

TEST(ReplyParser, EnhancedCodes) {
  ReplyParser p;
  p.append("550-5.1.1 The email account\r\n550 5.1.1 does not exist\r\n");
  auto r = p.next();
  ASSERT_TRUE(r && r->ok());
  EXPECT_EQ((*r)->code, 550);
  EXPECT_EQ((*r)->enhanced, "5.1.1");
  EXPECT_EQ((*r)->lines, (std::vector<std::string>{"The email account", "does not exist"}));
  // A code of another class than the reply is text, not an enhanced code.
  p.append("450 5.1.1 odd\r\n");
  r = p.next();
  ASSERT_TRUE(r && r->ok());
  EXPECT_EQ((*r)->enhanced, "");
  EXPECT_EQ((*r)->lines.front(), "5.1.1 odd");
  EXPECT_EQ(enhanced_code("4.7.30 REQUIRETLS", '4'), "4.7.30");
  EXPECT_EQ(enhanced_code("4.7.1", '4'), "4.7.1");
  EXPECT_EQ(enhanced_code("4.7.1x", '4'), "");
  EXPECT_EQ(enhanced_code("4.7.", '4'), "");
  EXPECT_EQ(enhanced_code("4.1234.1 x", '4'), "");
}

TEST(ReplyParser, BareLfAndStrayCr) {
  // Bare LF ends a line as in Postfix's smtp client; a CR inside a line stays text.
  EXPECT_EQ(transcript("250-a\n250 b\r\n"), "250-a\r\n250 b\r\n");
  EXPECT_EQ(transcript("250 a\rb\r\n"), "250 a\rb\r\n");
}

TEST(ReplyParser, MalformedIsAnError) {
  EXPECT_EQ(transcript("hello\r\n"), "error: malformed reply line: hello");
  EXPECT_EQ(transcript("25\r\n"), "error: malformed reply line: 25");
  EXPECT_EQ(transcript("2500 x\r\n"), "error: malformed reply line: 2500 x");
  EXPECT_EQ(transcript("650 x\r\n"), "error: malformed reply line: 650 x");
  EXPECT_EQ(transcript("150 x\r\n"), "error: malformed reply line: 150 x");
  EXPECT_EQ(transcript("2a0 x\r\n"), "error: malformed reply line: 2a0 x");
  EXPECT_EQ(transcript("250-a\r\n550 b\r\n"), "error: reply code 550 after 250 in one reply");
  // Replies before the bad line are still delivered; nothing after it.
  EXPECT_EQ(transcript("250 ok\r\n\r\n250 ok\r\n"), "250 ok\r\nerror: malformed reply line: ");
  ReplyParser p;
  p.append("x\r\n");
  ASSERT_FALSE(p.next()->ok());
  p.append("250 ok\r\n");
  EXPECT_FALSE(p.next()->ok());  // stays failed
}

TEST(ReplyParser, Limits) {
  ReplyLimits small{10, 3, 20};
  EXPECT_EQ(transcript("250 012345\r\n", small), "250 012345\r\n");  // exactly 10 bytes
  EXPECT_EQ(transcript("250 0123456\r\n", small), "error: reply line longer than 10 bytes");
  // Detected before the line end arrives: memory stays bounded.
  ReplyParser p(small);
  p.append(std::string(100, '2'));
  auto r = p.next();
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(transcript("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", small), "error: reply of more than 3 lines");
  EXPECT_EQ(transcript("250-aaaaa\r\n250-bbbbb\r\n250 c\r\n", small), "error: reply longer than 20 bytes");
}

TEST(ReplyParser, ClearDropsUnread) {
  ReplyParser p;
  p.append("220 go ahead\r\n250 injected\r\n");
  auto r = p.next();
  ASSERT_TRUE(r && r->ok());
  EXPECT_FALSE(p.empty());
  p.clear();
  EXPECT_TRUE(p.empty());
  EXPECT_FALSE(p.next());
}

}  // namespace
}  // namespace postern::smtp::client

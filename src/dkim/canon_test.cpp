// dkim/canon_test.cpp: relaxed canonicalization against RFC 6376 3.4.5's example and the edge cases (white
// space runs, trailing empty lines, empty bodies, folded fields), the body fed whole and split at every byte.
#include "dkim/canon.hpp"

#include <gtest/gtest.h>

namespace postern::dkim {
namespace {

std::string body_whole(std::string_view body) {
  std::string out;
  RelaxedBody canon([&](std::string_view piece) { out += piece; });
  canon.feed(body);
  canon.finish();
  return out;
}

// The canonical body, checking that every split of the input into two pieces and a byte-by-byte feed give
// the same bytes.
std::string body(std::string_view input) {
  std::string whole = body_whole(input);
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    std::string out;
    RelaxedBody canon([&](std::string_view piece) { out += piece; });
    canon.feed(input.substr(0, cut));
    canon.feed(input.substr(cut));
    canon.finish();
    EXPECT_EQ(out, whole) << "split at " << cut;
  }
  std::string out;
  RelaxedBody canon([&](std::string_view piece) { out += piece; });
  for (char c : input) canon.feed(std::string_view(&c, 1));
  canon.finish();
  EXPECT_EQ(out, whole) << "byte by byte";
  return whole;
}

std::vector<std::string> relaxed_fields(std::string_view message) {
  size_t body_offset = 0;
  std::vector<std::string> out;
  for (const auto& f : split_header(message, body_offset)) out.push_back(relaxed_header(f.text));
  return out;
}

TEST(DkimCanon, Rfc6376Example) {
  // RFC 6376 3.4.5, stored with LF line ends.
  std::string message = "A: X\nB : Y\t\n\tZ  \n\n C \nD \t E\n\n\n";
  size_t body_offset = 0;
  auto fields = split_header(message, body_offset);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0].name, "A");
  EXPECT_EQ(fields[1].name, "B ");
  EXPECT_EQ(fields[1].text, "B : Y\t\n\tZ  ");
  EXPECT_EQ(relaxed_header(fields[0].text), "a:X");
  EXPECT_EQ(relaxed_header(fields[1].text), "b:Y Z");
  EXPECT_EQ(message.substr(body_offset), " C \nD \t E\n\n\n");
  EXPECT_EQ(body(message.substr(body_offset)), " C\r\nD E\r\n");
}

TEST(DkimCanon, HeaderWhiteSpaceAndFolding) {
  EXPECT_EQ(relaxed_header("SUBJECT:   hello \t  world  "), "subject:hello world");
  EXPECT_EQ(relaxed_header("Subject:\n\tfolded\n   twice\t"), "subject:folded twice");
  EXPECT_EQ(relaxed_header("To \t:a"), "to:a");
  EXPECT_EQ(relaxed_header("X-Empty:"), "x-empty:");
  EXPECT_EQ(relaxed_header("X-Blank:  \t "), "x-blank:");
  // A CR is not white space (it would go on the wire as it is).
  EXPECT_EQ(relaxed_header("X: a\rb "), "x:a\rb");
  EXPECT_EQ(relaxed_header("no colon here"), "no colon here:");
  EXPECT_EQ(relaxed_header("No colon\n folded"), "no colon folded:");
}

TEST(DkimCanon, SplitHeader) {
  size_t body_offset = 0;
  auto fields = split_header("From: a\nSubject: x\n y\nTo: b\n\nbody\n", body_offset);
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[1].text, "Subject: x\n y");
  EXPECT_EQ(fields[2].name, "To");
  EXPECT_EQ(body_offset, 29u);

  // No empty line: no body, whether the last line has its LF or not.
  fields = split_header("From: a\nTo: b\n", body_offset);
  EXPECT_EQ(fields.size(), 2u);
  EXPECT_EQ(body_offset, 14u);
  fields = split_header("From: a\nTo: b", body_offset);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[1].text, "To: b");
  EXPECT_EQ(body_offset, 13u);

  // An empty header section; a folded last field without a body.
  fields = split_header("\nbody", body_offset);
  EXPECT_TRUE(fields.empty());
  EXPECT_EQ(body_offset, 1u);
  fields = split_header("X: a\n b\n", body_offset);
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0].text, "X: a\n b");
  EXPECT_EQ(body_offset, 8u);
}

TEST(DkimCanon, BodyEdgeCases) {
  EXPECT_EQ(body(""), "");
  EXPECT_EQ(body("\n\n\n"), "");
  EXPECT_EQ(body(" \t\n\t\n"), "");
  EXPECT_EQ(body("abc"), "abc\r\n");
  EXPECT_EQ(body("abc  "), "abc\r\n");
  EXPECT_EQ(body("a\n\n\nb\n\n"), "a\r\n\r\n\r\nb\r\n");
  EXPECT_EQ(body("a\n \n\t\nb"), "a\r\n\r\n\r\nb\r\n");
  EXPECT_EQ(body("  lead\tand   inner \t runs\t \n"), " lead and inner runs\r\n");
  EXPECT_EQ(body("x\r\n"), "x\r\r\n");  // a stored CR stays; its LF becomes CR LF
  EXPECT_EQ(body("Hi.\n\nWe lost the game.  Are you hungry yet?\n\nJoe.\n\n"),
            "Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n");
}

TEST(DkimCanon, LargeBodyComesInChunks) {
  std::string input;
  for (int i = 0; i < 20000; ++i) input += "line  of text \n";
  input += "\n\n";
  std::string expected;
  for (int i = 0; i < 20000; ++i) expected += "line of text\r\n";
  size_t calls = 0;
  std::string out;
  RelaxedBody canon([&](std::string_view piece) {
    ++calls;
    out += piece;
  });
  canon.feed(input);
  canon.finish();
  EXPECT_EQ(out, expected);
  EXPECT_GT(calls, 10u);
}

TEST(DkimCanon, FieldsOfAMessage) {
  EXPECT_EQ(relaxed_fields("From: Joe <joe@example.com>\nsubject:  Hi  there \n\nbody\n"),
            (std::vector<std::string>{"from:Joe <joe@example.com>", "subject:Hi there"}));
}

}  // namespace
}  // namespace postern::dkim

#include "smtp/proto/data_reader.hpp"

#include <gtest/gtest.h>

#include <random>

namespace postern::smtp::proto {
namespace {

struct Outcome {
  std::string content;
  bool done = false;
  size_t consumed = 0;
};

// Feeds `input` in two pieces split at `split`.
Outcome run(std::string_view input, size_t split, uint64_t max = 0) {
  DataReader r(max);
  Outcome o;
  o.consumed = r.feed(input.substr(0, split), o.content);
  if (!r.done()) o.consumed += r.feed(input.substr(split), o.content);
  o.done = r.done();
  return o;
}

void expect_everywhere(std::string_view input, std::string_view content, bool done, size_t consumed) {
  for (size_t i = 0; i <= input.size(); ++i) {
    Outcome o = run(input, i);
    EXPECT_EQ(o.content, content) << "split at " << i;
    EXPECT_EQ(o.done, done) << "split at " << i;
    if (done) {
      EXPECT_EQ(o.consumed, consumed) << "split at " << i;
    }
  }
}

TEST(DataReader, EndsAtCrLfDotCrLfAndUnstuffs) {
  std::string in = "Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n";
  expect_everywhere(in, "Subject: x\n\n.dot\n", true, in.size() - 6);
}

TEST(DataReader, EmptyMessage) {
  expect_everywhere(".\r\n", "", true, 3);
}

TEST(DataReader, SmugglingVariantsDoNotEnd) {
  // None of these ends the message: only CRLF.CRLF does.
  for (std::string_view s : {"a\n.\nb", "a\r.\rb", "a\n.\r\nb", "a\r\n.\nb", "a\r.\r\nb"}) {
    std::string in = std::string(s) + "\r\n.\r\n";
    for (size_t i = 0; i <= in.size(); ++i) {
      Outcome o = run(in, i);
      EXPECT_TRUE(o.done);
      EXPECT_EQ(o.consumed, in.size()) << s << " split at " << i;
      EXPECT_NE(o.content.find('b'), std::string::npos) << s;
    }
  }
}

TEST(DataReader, BareCrAndLfKept) {
  expect_everywhere("a\rb\nc\r\n.\r\n", "a\rb\nc\n", true, 10);
}

TEST(DataReader, SizeLimitStillFindsTheEnd) {
  std::string in = std::string(100, 'x') + "\r\n.\r\n";
  DataReader r(10);
  std::string out;
  EXPECT_EQ(r.feed(in, out), in.size());
  EXPECT_TRUE(r.done());
  EXPECT_TRUE(r.too_big());
  EXPECT_EQ(out.size(), 10u);
}

TEST(DataReader, AnyPiecesGiveWhatOneByteAtATimeGives) {
  // Lines go out in runs up to their CR; fed one byte at a time, every byte takes the single-byte path.
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string in;
    size_t len = rng() % 60;
    for (size_t i = 0; i < len; ++i) in += "ab.\r\n"[rng() % 5];
    if (rng() % 2) in += "\r\n.\r\nNEXT";
    uint64_t max = rng() % 3 == 0 ? 0 : rng() % 40;
    DataReader bytewise(max), pieces(max);
    std::string want, got;
    size_t want_used = 0, got_used = 0;
    for (size_t i = 0; i < in.size() && !bytewise.done(); ++i)
      want_used += bytewise.feed(in.substr(i, 1), want);
    for (size_t i = 0; i < in.size() && !pieces.done();) {
      size_t n = 1 + rng() % 20;
      got_used += pieces.feed(in.substr(i, n), got);
      i += n;
    }
    ASSERT_EQ(got, want) << round;
    ASSERT_EQ(pieces.done(), bytewise.done()) << round;
    ASSERT_EQ(got_used, want_used) << round;
    ASSERT_EQ(pieces.size(), bytewise.size()) << round;
    ASSERT_EQ(pieces.too_big(), bytewise.too_big()) << round;
    if (max != 0) {
      ASSERT_LE(got.size(), max) << round;
    }
  }
}

TEST(CrlfToLf, AcrossPieces) {
  std::string in = "a\r\nb\rc\r";
  for (size_t i = 0; i <= in.size(); ++i) {
    CrlfToLf n;
    std::string out;
    n.feed(std::string_view(in).substr(0, i), out);
    n.feed(std::string_view(in).substr(i), out);
    n.finish(out);
    EXPECT_EQ(out, "a\nb\rc\r") << i;
  }
}

}  // namespace
}  // namespace postern::smtp::proto

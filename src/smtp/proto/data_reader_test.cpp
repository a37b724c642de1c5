#include "smtp/proto/data_reader.hpp"

#include <gtest/gtest.h>

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

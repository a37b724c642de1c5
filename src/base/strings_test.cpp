#include "base/strings.hpp"

#include <algorithm>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace postern {
namespace {

size_t naive_bare_lf(std::string_view s, bool cr_before) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' && !(i == 0 ? cr_before : s[i - 1] == '\r')) ++n;
  return n;
}

TEST(CountLf, AgreesWithAByteAtATimeCountAtEveryOffsetAndLength) {
  std::mt19937 rng(7);
  const char alphabet[] = {'\n', '\r', 'a', '\n', '\r', '\xff', '\x80', ' '};
  std::string text(9000, ' ');  // long enough for the byte counters' periodic sums (255 blocks of 16)
  for (auto& c : text) c = alphabet[rng() % sizeof(alphabet)];
  for (size_t a = 0; a < 40; ++a)
    for (size_t b = a; b <= text.size(); b += 1 + b % 97) {
      std::string_view s(text.data() + a, b - a);
      ASSERT_EQ(count_lf(s), static_cast<size_t>(std::count(s.begin(), s.end(), '\n'))) << a << " " << b;
      for (bool cr : {false, true}) ASSERT_EQ(count_bare_lf(s, cr), naive_bare_lf(s, cr)) << a << " " << b;
    }
  std::string lfs(5000, '\n');
  EXPECT_EQ(count_lf(lfs), 5000u);  // every byte counted: no byte counter wraps
  EXPECT_EQ(count_bare_lf(lfs), 5000u);
}

TEST(CountLf, CrLfAcrossBlockEdges) {
  EXPECT_EQ(count_bare_lf("0123456789abcde\r\n"), 0u);  // CR last of a 16-byte block, LF first of the next
  EXPECT_EQ(count_bare_lf("0123456789abcdef\n"), 1u);
  EXPECT_EQ(count_bare_lf("\n123456789abcdef\n\r\n"), 2u);
  EXPECT_EQ(count_bare_lf("\n123456789abcdef", true), 0u);
  EXPECT_EQ(count_bare_lf("\n", true), 0u);
  EXPECT_EQ(count_bare_lf("\n"), 1u);
  EXPECT_EQ(count_bare_lf(""), 0u);
  EXPECT_EQ(count_lf(""), 0u);
}

}  // namespace
}  // namespace postern

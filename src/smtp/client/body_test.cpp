#include "smtp/client/body.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace postern::smtp::client {
namespace {

std::string encode(std::string_view content, BodyEncoder::Mode mode,
                   size_t piece = BodyEncoder::kDefaultPiece) {
  BodyEncoder e(content, mode, piece);
  std::string out;
  for (std::string_view p = e.next(); !p.empty(); p = e.next()) {
    EXPECT_LE(p.size(), piece + 5);  // a piece, a stuffed dot, CRLF and the end marker at most
    out += p;
  }
  EXPECT_TRUE(e.next().empty());
  return out;
}

TEST(BodyEncoder, DataStuffsDotsAndEndsWithDot) {
  using enum BodyEncoder::Mode;
  EXPECT_EQ(encode("Subject: x\n\n.hidden\n..two\nend.\n", kData),
            "Subject: x\r\n\r\n..hidden\r\n...two\r\nend.\r\n.\r\n");
  EXPECT_EQ(encode(".\n", kData), "..\r\n.\r\n");
  EXPECT_EQ(encode("", kData), ".\r\n");
  // CRLF already there stays; a last line without LF is ended; a bare CR stays.
  EXPECT_EQ(encode("a\r\nb\rc\nlast", kData), "a\r\nb\rc\r\nlast\r\n.\r\n");
}

TEST(BodyEncoder, BdatIsUnstuffedAndSized) {
  using enum BodyEncoder::Mode;
  for (std::string_view content : {"", ".a\n\n.\n", "a\r\nb\n", "no end", "\n\n\n", "x\r"}) {
    std::string wire = encode(content, kBdat);
    EXPECT_EQ(BodyEncoder::bdat_size(content), wire.size()) << content;
  }
  EXPECT_EQ(encode(".a\n\n.\n", kBdat), ".a\r\n\r\n.\r\n");
}

TEST(BodyEncoder, PiecesGiveTheSameBytes) {
  std::string content;
  for (int i = 0; i < 200; ++i)
    content += (i % 7 == 0 ? ".line " : "line ") + std::string(i % 13, 'x') + "\n";
  content += "\r\n.\r\nlong" + std::string(300, 'y');
  for (auto mode : {BodyEncoder::Mode::kData, BodyEncoder::Mode::kBdat}) {
    std::string whole = encode(content, mode);
    for (size_t piece : {1, 2, 3, 7, 64, 1000}) EXPECT_EQ(encode(content, mode, piece), whole) << piece;
  }
}

TEST(BodyEncoder, LargeMessageInBoundedPieces) {
  std::string content(8 * 1024 * 1024, 'a');
  for (size_t i = 99; i < content.size(); i += 100) content[i] = '\n';
  content.back() = '\n';
  size_t lines = static_cast<size_t>(std::count(content.begin(), content.end(), '\n'));
  BodyEncoder e(content, BodyEncoder::Mode::kData);
  size_t total = 0, pieces = 0;
  for (std::string_view p = e.next(); !p.empty(); p = e.next()) {
    EXPECT_LE(p.size(), BodyEncoder::kDefaultPiece + 5);
    total += p.size();
    ++pieces;
  }
  EXPECT_EQ(total, content.size() + lines + 3);  // a CR per line, then ".\r\n"
  EXPECT_GT(pieces, 100u);
}

}  // namespace
}  // namespace postern::smtp::client

// fuzz/smtp_data.cpp: libFuzzer target for DataReader and CrlfToLf, fed in pieces. The input is what a client
// sends after 354. DATA must end exactly after the first CR LF "." CR LF at a line start (no smuggling
// through bare LF or bare CR), and the content must match a plain reference: lines unstuffed and joined by
// LF.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "smtp/proto/data_reader.hpp"

namespace {

using postern::smtp::proto::CrlfToLf;
using postern::smtp::proto::DataReader;

struct Expected {
  bool done = false;
  size_t consumed = 0;  // when done
  std::string content;  // when done
};

// The reference reading, written for clarity: DATA ends at the first line that is exactly "."; a line ends at
// CR LF only; a leading dot is removed from every other line.
Expected reference(std::string_view in) {
  Expected e;
  std::string framed = "\r\n" + std::string(in);
  size_t t = framed.find("\r\n.\r\n");
  if (t == std::string::npos) return e;
  e.done = true;
  e.consumed = t + 3;  // t + 5 in `framed`, less the two bytes put in front
  std::string_view body = in.substr(0, e.consumed - 3);
  for (size_t pos = 0; pos < body.size();) {
    size_t eol = body.find("\r\n", pos);
    std::string_view line = body.substr(pos, eol - pos);
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    e.content += line;
    e.content += '\n';
    pos = eol + 2;
  }
  return e;
}

void check_data(std::string_view input, uint64_t max_size) {
  DataReader reader(max_size);
  std::string content;
  size_t consumed = 0;
  for (std::string_view piece : postern::fuzz::split_pieces(input)) {
    size_t n = reader.feed(piece, content);
    POSTERN_FUZZ_CHECK(n <= piece.size());
    consumed += n;
    if (n < piece.size()) POSTERN_FUZZ_CHECK(reader.done());
    if (reader.done()) break;
  }
  POSTERN_FUZZ_CHECK(consumed <= input.size());
  POSTERN_FUZZ_CHECK(content.size() <= input.size());
  POSTERN_FUZZ_CHECK(reader.size() <= input.size());
  POSTERN_FUZZ_CHECK(max_size == 0 || content.size() <= max_size);

  Expected e = reference(input);
  POSTERN_FUZZ_CHECK(reader.done() == e.done);
  if (reader.done()) {
    std::string_view prefix = input.substr(0, consumed);
    POSTERN_FUZZ_CHECK(prefix == ".\r\n" ||
                       (prefix.size() >= 5 && prefix.substr(prefix.size() - 5) == "\r\n.\r\n"));
    POSTERN_FUZZ_CHECK(consumed == e.consumed);
    POSTERN_FUZZ_CHECK(reader.size() == e.content.size());
    POSTERN_FUZZ_CHECK(reader.too_big() == (max_size != 0 && e.content.size() > max_size));
    POSTERN_FUZZ_CHECK(content == (max_size == 0 ? e.content : e.content.substr(0, max_size)));
  } else {
    POSTERN_FUZZ_CHECK(consumed == input.size());
    // What was stored so far is the start of what any ending would give.
    std::string ended = std::string(input) + "\r\n.\r\n";
    Expected later = reference(ended);
    POSTERN_FUZZ_CHECK(later.done);
    POSTERN_FUZZ_CHECK(later.content.compare(0, content.size(), content) == 0);
  }
}

void check_crlf_to_lf(std::string_view input) {
  CrlfToLf conv;
  std::string out;
  for (std::string_view piece : postern::fuzz::split_pieces(input)) conv.feed(piece, out);
  conv.finish(out);
  std::string expected;
  for (size_t i = 0; i < input.size(); ++i) {
    if (input[i] == '\r' && i + 1 < input.size() && input[i + 1] == '\n') continue;
    expected += input[i];
  }
  POSTERN_FUZZ_CHECK(out == expected);
}

}  // namespace

int postern_fuzz_smtp_data(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  check_data(input, 0);
  check_data(input, postern::fuzz::hash_input(input) % 64 + 1);  // a small message_size_limit
  check_crlf_to_lf(input);
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_smtp_data(data, size);
}
#endif

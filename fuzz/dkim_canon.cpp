// fuzz/dkim_canon.cpp: libFuzzer target for DKIM relaxed canonicalization (RFC 6376 3.4.2, 3.4.4): the input
// is a stored message. Header fields cover the header section in order and never end in a folded line's
// middle; relaxed_header's output has no line break, no white space run, no white space at the value's ends,
// and canonicalizing it again changes nothing; the body fed in pieces gives what a plain reference gives:
// each line with white space runs made one SP and trailing white space removed, empty lines at the end
// dropped, CR LF after each line.

#include <cstdint>
#include <string>
#include <string_view>

#include "dkim/canon.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"

namespace {

bool wsp(char c) {
  return c == ' ' || c == '\t';
}

std::string reference_body(std::string_view body) {
  std::string out, pending;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find('\n', pos);
    if (eol == std::string_view::npos) eol = body.size();
    std::string line;
    for (char c : body.substr(pos, eol - pos)) {
      if (wsp(c) && !line.empty() && line.back() == ' ') continue;
      line += wsp(c) ? ' ' : c;
    }
    if (!line.empty() && line.back() == ' ') line.pop_back();
    pending += line + "\r\n";
    if (!line.empty()) {
      out += pending;
      pending.clear();
    }
    pos = eol + 1;
  }
  return out;
}

}  // namespace

int postern_fuzz_dkim_canon(const uint8_t* data, size_t size) {
  using namespace postern::dkim;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t body_offset = 0;
  auto fields = split_header(input, body_offset);
  POSTERN_FUZZ_CHECK(body_offset <= input.size());
  size_t next = 0;
  for (const auto& f : fields) {
    POSTERN_FUZZ_CHECK(f.text.data() == input.data() + next);
    POSTERN_FUZZ_CHECK(f.name.data() == f.text.data() && f.name.size() <= f.text.size());
    next += f.text.size() + 1;
    POSTERN_FUZZ_CHECK(next >= input.size() || input[next - 1] == '\n');
    POSTERN_FUZZ_CHECK(next >= input.size() || !wsp(input[next]));
    std::string relaxed = relaxed_header(f.text);
    POSTERN_FUZZ_CHECK(relaxed.find('\n') == std::string::npos);
    size_t colon = relaxed.find(':');
    POSTERN_FUZZ_CHECK(colon != std::string::npos);
    std::string_view value = std::string_view(relaxed).substr(colon + 1);
    POSTERN_FUZZ_CHECK(value.find('\t') == std::string_view::npos &&
                       value.find("  ") == std::string_view::npos);
    POSTERN_FUZZ_CHECK(value.empty() || (value.front() != ' ' && value.back() != ' '));
    POSTERN_FUZZ_CHECK(relaxed_header(relaxed) == relaxed);
  }

  std::string_view body = input.substr(body_offset);
  std::string out;
  RelaxedBody canon([&](std::string_view piece) { out += piece; });
  for (std::string_view piece : postern::fuzz::split_pieces(body)) canon.feed(piece);
  canon.finish();
  POSTERN_FUZZ_CHECK(out == reference_body(body));
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_dkim_canon(data, size);
}
#endif

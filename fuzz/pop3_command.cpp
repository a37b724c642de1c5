// fuzz/pop3_command.cpp: libFuzzer target for a POP3 client's byte stream as the server reads it: LineBuffer
// (the POP3 listener's line reader), then pop3::proto::parse_command on each line and parse_msg_number on
// each argument; AUTH PLAIN's initial response goes through sasl::split_plain. Properties: the keyword is
// 3-4 upper-case letters, arguments are non-empty, carry no space and are at most 255 bytes (PASS: one
// argument, the rest of the line, spaces kept); parsing is case-insensitive in the keyword and stable when
// the command is written back; a message number is accepted only in its canonical decimal form; the stream
// gives the same transcript at once and cut in pieces.

#include <cstdint>
#include <string>
#include <string_view>

#include "auth/sasl/base64.hpp"
#include "auth/sasl/simple.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "pop3/proto/command.hpp"
#include "smtp/proto/line_buffer.hpp"

namespace {

using postern::pop3::proto::Command;
using postern::pop3::proto::parse_command;
using postern::pop3::proto::parse_msg_number;
using postern::smtp::proto::LineBuffer;

constexpr size_t kMaxLine = 8192;  // imap_max_line_length's default, which the POP3 listener uses
constexpr size_t kShortLine = 40;  // small, so that overlong lines and their ends are common
constexpr size_t kMaxArg = 255;

bool is_upper_letter(char c) {
  return c >= 'A' && c <= 'Z';
}

std::string lower_keyword(std::string_view line) {
  std::string out(line);
  for (char& c : out) {
    if (c == ' ') break;
    if (is_upper_letter(c)) c = static_cast<char>(c + 32);
  }
  return out;
}

void check_msg_number(std::string_view arg) {
  unsigned n = parse_msg_number(arg);
  if (n != 0) {
    // Only the canonical form: no sign, no leading zero, no space, no overflow.
    POSTERN_FUZZ_CHECK(std::to_string(n) == arg);
  } else {
    bool canonical = !arg.empty() && arg.size() <= 10 && arg[0] >= '1' && arg[0] <= '9';
    for (char c : arg) canonical = canonical && c >= '0' && c <= '9';
    POSTERN_FUZZ_CHECK(!canonical || std::stoull(std::string(arg)) > 0xffffffffULL);
  }
}

void check_plain(std::string_view response) {
  auto decoded = postern::auth::sasl::base64_decode(response);
  postern::auth::sasl::PlainFields f;
  if (!decoded || !postern::auth::sasl::split_plain(*decoded, f)) return;
  POSTERN_FUZZ_CHECK(!f.authcid.empty());
  POSTERN_FUZZ_CHECK(f.authzid.find('\0') == std::string_view::npos);
  POSTERN_FUZZ_CHECK(f.authcid.find('\0') == std::string_view::npos);
  POSTERN_FUZZ_CHECK(f.password.find('\0') == std::string_view::npos);
  std::string joined =
      std::string(f.authzid) + '\0' + std::string(f.authcid) + '\0' + std::string(f.password);
  POSTERN_FUZZ_CHECK(joined == *decoded);
}

// What the parser decided for one line, checked against the properties above.
std::string handle(std::string_view line) {
  Command c;
  if (!parse_command(line, c)) {
    // Refused lines stay refused with the keyword in another case.
    Command again;
    POSTERN_FUZZ_CHECK(!parse_command(lower_keyword(line), again));
    return "-\n";
  }
  POSTERN_FUZZ_CHECK(c.verb.size() >= 3 && c.verb.size() <= 4);
  for (char ch : c.verb) POSTERN_FUZZ_CHECK(is_upper_letter(ch));
  if (c.verb == "PASS") {
    POSTERN_FUZZ_CHECK(c.args.size() <= 1);
    // The password is the rest of the line exactly.
    if (!c.args.empty()) POSTERN_FUZZ_CHECK(line.substr(5) == c.args[0]);
  } else {
    for (size_t i = 0; i < c.args.size(); ++i) {
      const auto& a = c.args[i];
      // AUTH's initial response (its second argument) may be longer.
      POSTERN_FUZZ_CHECK(!a.empty() && (a.size() <= kMaxArg || (c.verb == "AUTH" && i == 1)));
      POSTERN_FUZZ_CHECK(a.find(' ') == std::string::npos);
      check_msg_number(a);
    }
    // Written back, the command parses to the same command.
    std::string wire = c.verb;
    for (const auto& a : c.args) wire += ' ' + a;
    Command again;
    POSTERN_FUZZ_CHECK(parse_command(wire, again));
    POSTERN_FUZZ_CHECK(again.verb == c.verb && again.args == c.args);
    if (c.verb == "AUTH" && c.args.size() == 2) check_plain(c.args[1]);
  }
  Command lower;
  POSTERN_FUZZ_CHECK(parse_command(lower_keyword(line), lower));
  POSTERN_FUZZ_CHECK(lower.verb == c.verb && lower.args == c.args);
  std::string out = c.verb;
  for (const auto& a : c.args) out += '|' + a;
  return out + '\n';
}

class Driver {
 public:
  explicit Driver(size_t max_line) : max_line_(max_line), lines_(max_line) {}

  void feed(std::string_view bytes) {
    lines_.append(bytes);
    for (;;) {
      std::string_view line;
      LineBuffer::Status status = lines_.next(line);
      if (status == LineBuffer::Status::kNeedMore) return;
      if (status == LineBuffer::Status::kTooLong) {
        transcript_ += "[too long]\n";
        continue;
      }
      POSTERN_FUZZ_CHECK(line.size() <= max_line_);
      POSTERN_FUZZ_CHECK(line.find('\n') == line.npos);
      transcript_ += handle(line);
    }
  }
  const std::string& transcript() const { return transcript_; }

 private:
  size_t max_line_;
  LineBuffer lines_;
  std::string transcript_;
};

}  // namespace

int postern_fuzz_pop3_command(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto pieces = postern::fuzz::split_pieces(input);
  auto after_cr = postern::fuzz::split_after(input, '\r');
  for (size_t max_line : {kMaxLine, kShortLine}) {
    Driver whole(max_line);
    whole.feed(input);
    for (const auto& cut : {pieces, after_cr}) {
      Driver split(max_line);
      for (std::string_view piece : cut) split.feed(piece);
      POSTERN_FUZZ_CHECK(whole.transcript() == split.transcript());
    }
  }
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_pop3_command(data, size);
}
#endif

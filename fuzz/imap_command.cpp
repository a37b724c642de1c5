// fuzz/imap_command.cpp: libFuzzer target for an IMAP client's byte stream: CommandReader frames it (fed
// whole and cut in two at a place the first byte picks: both must give the same transcript), parse_command
// parses every command, and the typed pieces (sequence sets, sections, dates) are parsed from its atoms and
// strings and from the raw words of the input. What the writer writes, the parser must read back.
// GETMETADATA/SETMETADATA arguments go through imap/proto/metadata, and the whole input through the METADATA
// file decoder, whose entries must survive encoding and decoding again.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/strings.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "imap/proto/metadata.hpp"
#include "imap/proto/parser.hpp"
#include "imap/proto/reader.hpp"
#include "imap/proto/writer.hpp"

namespace {

using namespace postern::imap::proto;

constexpr uint32_t kStarValue = 50;  // "*" when checking a set's members
constexpr uint32_t kMembersUpTo = 64;

// Sets, sections and dates in `s`, with the properties each must have.
void check_pieces(std::string_view s) {
  if (auto set = parse_seqset(s)) {
    POSTERN_FUZZ_CHECK(set->saved == (s == "$"));
    // Either end may be "*" (kStar, 0) or the higher one, as written.
    for (auto [lo, hi] : set->ranges)
      POSTERN_FUZZ_CHECK((lo >= 1 || lo == kStar) && (hi >= 1 || hi == kStar));
    std::vector<uint32_t> numbers;
    for (uint32_t n = 1; n <= kMembersUpTo; ++n)
      if (seqset_contains(*set, n, kStarValue)) numbers.push_back(n);
    std::string formatted = format_seqset(numbers);
    if (numbers.empty()) {
      POSTERN_FUZZ_CHECK(formatted.empty());
    } else {
      auto again = parse_seqset(formatted);
      POSTERN_FUZZ_CHECK(again.has_value() && !again->saved);
      for (uint32_t n = 1; n <= kMembersUpTo; ++n) {
        bool in = std::binary_search(numbers.begin(), numbers.end(), n);
        POSTERN_FUZZ_CHECK(seqset_contains(*again, n, kStarValue) == in);
      }
    }
  }
  size_t open = s.find('[');
  size_t close = s.rfind(']');
  if (open != s.npos && close != s.npos && open < close) {
    if (auto sec = parse_section(s.substr(open + 1, close - open - 1))) {
      for (uint32_t part : sec->path) POSTERN_FUZZ_CHECK(part >= 1);
      if (sec->kind == Section::Kind::kMime) POSTERN_FUZZ_CHECK(!sec->path.empty());
      bool fields = sec->kind == Section::Kind::kHeaderFields || sec->kind == Section::Kind::kHeaderFieldsNot;
      POSTERN_FUZZ_CHECK(fields == !sec->fields.empty());
    }
  }
  if (auto t = parse_date_time(s)) {
    // INTERNALDATE is written back in the same format (years 1970 to 9999).
    if (*t >= 0 && *t <= 253402300799) POSTERN_FUZZ_CHECK(parse_date_time(format_date_time(*t)) == *t);
  }
  if (auto d = parse_date(s)) POSTERN_FUZZ_CHECK(*d % 86400 == 0);
}

// What the writer makes of `s` parses back to `s`.
void check_writer(std::string_view s) {
  if (s.find('\0') != s.npos) return;  // no IMAP string holds NUL; the parser refuses it
  for (bool utf8 : {false, true}) {
    std::string out = "t X ";
    append_string(out, s, utf8);
    ParseResult r = parse_command(out);
    POSTERN_FUZZ_CHECK(r.ok && r.command.args.size() == 1);
    POSTERN_FUZZ_CHECK(r.command.args[0].type == Token::Type::kString && r.command.args[0].value == s);
    // NIL in mixed case is written as an atom (writer_test.cpp: DISABLED_AStringNilIsQuotedInAnyCase), and
    // the parser reads '[' in any atom as the start of a section (parser_test.cpp:
    // DISABLED_BracketInAnOrdinaryAtom).
    if (postern::iequals(s, "NIL") || s.find('[') != s.npos) continue;
    out = "t X ";
    append_astring(out, s, utf8);
    r = parse_command(out);
    POSTERN_FUZZ_CHECK(r.ok && r.command.args.size() == 1);
    POSTERN_FUZZ_CHECK(r.command.args[0].type != Token::Type::kNil && r.command.args[0].text() == s);
  }
}

void check_tokens(const std::vector<Token>& tokens, int depth, size_t& budget) {
  POSTERN_FUZZ_CHECK(depth <= kMaxDepth);
  for (const Token& t : tokens) {
    if (t.is_list()) {
      POSTERN_FUZZ_CHECK(t.value.empty());
      check_tokens(t.items, depth + 1, budget);
      continue;
    }
    POSTERN_FUZZ_CHECK(t.items.empty());
    if (t.type == Token::Type::kAtom) POSTERN_FUZZ_CHECK(!t.value.empty());
    // Inside an atom's brackets any byte but CR and LF passes (parser_test.cpp:
    // DISABLED_ControlBytesInSection).
    if (!t.literal8 && t.value.find('[') == std::string::npos)
      POSTERN_FUZZ_CHECK(t.value.find('\0') == std::string::npos);
    if (budget == 0) continue;  // the typed parsers on the first tokens only: linear time overall
    --budget;
    check_pieces(t.value);
    if (t.type == Token::Type::kString) check_writer(t.value);
  }
}

// Entry names the METADATA parsers return are valid and in lower case.
void check_metadata(const Command& c) {
  auto valid = [](const std::string& name) {
    auto again = metadata_entry_name(name);
    POSTERN_FUZZ_CHECK(again.ok() && *again == name);
  };
  if (c.name == "GETMETADATA") {
    if (auto args = parse_getmetadata(c)) {
      POSTERN_FUZZ_CHECK(args->mailbox != nullptr && !args->entries.empty());
      for (const auto& name : args->entries) valid(name);
    }
  } else if (c.name == "SETMETADATA") {
    if (auto args = parse_setmetadata(c)) {
      POSTERN_FUZZ_CHECK(args->mailbox != nullptr && !args->entries.empty());
      for (const auto& [name, value] : args->entries) valid(name);
    }
  }
}

// The METADATA file decoder on any bytes: what it keeps is encoded and decoded back unchanged.
void check_metadata_file(std::string_view text) {
  MetadataFile file = decode_metadata_file(text, 64);
  POSTERN_FUZZ_CHECK(file.entries.size() <= 64);
  POSTERN_FUZZ_CHECK(file.damaged == !file.error.empty());
  MetadataFile again = decode_metadata_file(encode_metadata_file(file.entries), 64);
  POSTERN_FUZZ_CHECK(!again.damaged && again.entries == file.entries);
}

// The reader and the parser as a session uses them; each event goes into the transcript.
class Driver {
 public:
  explicit Driver(size_t input_size) : input_size_(input_size), reader_(limits()) {}

  static ReaderLimits limits() {
    ReaderLimits l;
    l.max_line = 256;  // small limits, so that refusals are common
    l.max_literal = 512;
    l.max_append_literal = 1024;
    l.max_literals = 8;
    return l;
  }

  void feed(std::string_view bytes) {
    reader_.append(bytes);
    // next() may return kNeedMore after a non-synchronizing literal's announcement with its bytes buffered
    // (reader_test.cpp: DISABLED_NonSyncLiteralAlreadyBufferedNeedsNoMoreInput): call it again until it
    // has made no progress, which the input's size bounds.
    size_t idle = 0;
    while (idle <= input_size_ + 2) {
      if (want_line_) {
        std::string line;
        if (!reader_.next_line(line)) return;
        POSTERN_FUZZ_CHECK(line.size() <= limits().max_line && line.size() <= input_size_);
        POSTERN_FUZZ_CHECK(line.find('\n') == std::string::npos);
        transcript_ += "line " + line + "\n";
        want_line_ = false;
        continue;
      }
      CommandReader::Status s = reader_.next();
      if (s == CommandReader::Status::kNeedMore) {
        ++idle;
        continue;
      }
      idle = 0;
      switch (s) {
        case CommandReader::Status::kCommand:
          command(reader_.command());
          break;
        case CommandReader::Status::kContinue:
          transcript_ += "+ " + reader_.tag() + " " + reader_.name() + "\n";
          break;
        case CommandReader::Status::kLineTooLong:
          transcript_ += "too long " + reader_.tag() + "\n";
          break;
        case CommandReader::Status::kLiteralTooBig:
          transcript_ += "too big " + reader_.tag() + " " + std::to_string(reader_.literal_size()) + "\n";
          break;
        case CommandReader::Status::kNeedMore:
          break;
      }
    }
  }

  const std::string& transcript() const { return transcript_; }

 private:
  void command(std::string_view text) {
    // Never longer than the input, but for the CR the reader puts before a literal announced with a bare LF.
    POSTERN_FUZZ_CHECK(text.size() <= input_size_ + limits().max_literals);
    transcript_ += "command ";
    transcript_.append(text);
    transcript_ += "\n";
    ParseResult r = parse_command(text);
    if (!r.ok) {
      POSTERN_FUZZ_CHECK(!r.error.empty());
      return;
    }
    POSTERN_FUZZ_CHECK(!r.command.tag.empty() && r.error.empty());
    POSTERN_FUZZ_CHECK(r.command.tag.find_first_of(" \r\n") == std::string::npos);
    POSTERN_FUZZ_CHECK(!r.command.name.empty());
    for (char c : r.command.name) POSTERN_FUZZ_CHECK(c >= 'A' && c <= 'Z');
    size_t budget = 64;
    check_tokens(r.command.args, 0, budget);
    check_metadata(r.command);
    if (r.command.name == "IDLE") want_line_ = true;  // then DONE, as a plain line
  }

  size_t input_size_;
  CommandReader reader_;
  std::string transcript_;
  bool want_line_ = false;
};

}  // namespace

int postern_fuzz_imap_command(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.empty()) return 0;
  Driver whole(size);
  whole.feed(input);
  size_t cut = static_cast<size_t>(data[0]) * size / 256;
  Driver split(size);
  split.feed(input.substr(0, cut));
  split.feed(input.substr(cut));
  POSTERN_FUZZ_CHECK(whole.transcript() == split.transcript());
  // The typed parsers on the raw words too (where the command parser would have stopped early).
  size_t words = 0;
  for (std::string_view word : postern::split(input.substr(0, 4096), ' ')) {
    if (++words > 64) break;
    check_pieces(word);
  }
  if (input.size() <= 2048) check_writer(input);
  check_metadata_file(input);
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_imap_command(data, size);
}
#endif

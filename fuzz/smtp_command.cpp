// fuzz/smtp_command.cpp: libFuzzer target for a client's byte stream: LineBuffer, parse_command and
// Reply::render, with DATA and BDAT content taken as the session takes it. The stream is fed at once and in
// pieces: both must give the same transcript; no reply or address may carry CR, LF or NUL; decoded DSN
// parameters are printable and round-trip.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "smtp/proto/command.hpp"
#include "smtp/proto/data_reader.hpp"
#include "smtp/proto/line_buffer.hpp"

namespace {

using namespace postern::smtp::proto;

constexpr size_t kMaxLine = 512;   // a full-size command line (line_length_limit is larger)
constexpr size_t kShortLine = 32;  // a small limit, so that overlong lines and their ends are common

bool has_line_break_or_nul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != s.npos;
}

// A session reduced to what the parsers decide: each command, each refusal as sent, the message content.
class Driver {
 public:
  Driver(size_t max_line, bool smtputf8) : max_line_(max_line), lines_(max_line) {
    options_.smtputf8_enabled = smtputf8;
  }

  void feed(std::string_view bytes) {
    lines_.append(bytes);
    run();
  }
  const std::string& transcript() const { return transcript_; }

 private:
  void run() {
    for (;;) {
      if (data_) {
        size_t n = data_->feed(lines_.pending(), transcript_);
        POSTERN_FUZZ_CHECK(n <= lines_.pending().size());
        lines_.consume(n);
        if (!data_->done()) return;
        data_.reset();
        transcript_ += "[end of data]\n";
        continue;
      }
      if (bdat_left_ > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(bdat_left_, lines_.pending().size()));
        transcript_.append(lines_.pending().substr(0, n));
        lines_.consume(n);
        bdat_left_ -= n;
        if (bdat_left_ > 0) return;
        transcript_ += "[end of chunk]\n";
        continue;
      }
      std::string_view line;
      LineBuffer::Status status = lines_.next(line);
      if (status == LineBuffer::Status::kNeedMore) return;
      if (status == LineBuffer::Status::kTooLong) {
        transcript_ += "[too long]\n";
        continue;
      }
      POSTERN_FUZZ_CHECK(line.size() <= max_line_);
      POSTERN_FUZZ_CHECK(line.find('\n') == line.npos);
      handle(parse_command(line, options_));
    }
  }

  void handle(const ParseResult& r) {
    const Command& c = r.command;
    transcript_ += std::to_string(static_cast<int>(c.verb));
    transcript_ += ' ';
    transcript_ += c.arg;
    transcript_ += '\n';
    if (r.error) {
      std::string wire = r.error->render();
      POSTERN_FUZZ_CHECK(r.error->code >= 400 && r.error->code <= 599);
      POSTERN_FUZZ_CHECK(wire.size() >= 6 && wire.compare(wire.size() - 2, 2, "\r\n") == 0);
      for (const auto& text : r.error->lines) POSTERN_FUZZ_CHECK(!has_line_break_or_nul(text));
      transcript_ += wire;
      return;
    }
    if (c.verb == Verb::kMail || c.verb == Verb::kRcpt) {
      std::string addr = c.address.str();
      // The address goes into Return-Path and Delivered-To headers: it must not be able to start a new one.
      POSTERN_FUZZ_CHECK(!has_line_break_or_nul(addr));
      POSTERN_FUZZ_CHECK(c.address.local.size() <= 64 && c.address.domain.size() <= 255);
      if (c.verb == Verb::kRcpt) POSTERN_FUZZ_CHECK(!c.address.null);
      transcript_ += '<' + addr + ">\n";
      // ENVID and ORCPT go into DSN fields: printable US-ASCII only, and they encode back to what was sent.
      std::string_view decoded[] = {
          c.mail.envid ? std::string_view(*c.mail.envid) : std::string_view(),
          c.rcpt.orcpt ? std::string_view(c.rcpt.orcpt->address) : std::string_view()};
      for (std::string_view d : decoded) {
        for (unsigned char ch : d) POSTERN_FUZZ_CHECK(ch >= 32 && ch <= 126);
        POSTERN_FUZZ_CHECK(xtext_decode(xtext_encode(d)) == d);
      }
      if (c.rcpt.notify) POSTERN_FUZZ_CHECK(parse_notify(notify_text(c.rcpt.notify)) == c.rcpt.notify);
    }
    if (c.verb == Verb::kData) data_.emplace(0);
    if (c.verb == Verb::kBdat) bdat_left_ = c.chunk_size;
  }

  size_t max_line_;
  ParseOptions options_;
  LineBuffer lines_;
  std::optional<DataReader> data_;
  uint64_t bdat_left_ = 0;
  std::string transcript_;
};

}  // namespace

int postern_fuzz_smtp_command(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // TCP may cut the stream anywhere: what the server decides must not depend on where. Cuts between CR and
  // LF are tried on purpose.
  auto pieces = postern::fuzz::split_pieces(input);
  auto after_cr = postern::fuzz::split_after(input, '\r');
  for (size_t max_line : {kMaxLine, kShortLine}) {
    Driver whole(max_line, true);
    whole.feed(input);
    for (const auto& cut : {pieces, after_cr}) {
      Driver split(max_line, true);
      for (std::string_view piece : cut) split.feed(piece);
      POSTERN_FUZZ_CHECK(whole.transcript() == split.transcript());
    }
  }
  Driver ascii(kMaxLine, false);
  ascii.feed(input);
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_smtp_command(data, size);
}
#endif

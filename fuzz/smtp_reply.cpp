// fuzz/smtp_reply.cpp: libFuzzer target for the SMTP client's reply parser (smtp/client/reply_parser.hpp)
// and the EHLO capabilities built from its replies. Any bytes from a server, fed at once and in pieces (cuts
// after CR included), give the same replies and the same error; every reply has a code from 200 to 599 and
// text without line breaks, and renders into bytes that parse back to the same reply.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "smtp/client/capabilities.hpp"
#include "smtp/client/reply_parser.hpp"

namespace {

using namespace postern::smtp;

constexpr client::ReplyLimits kSmall{32, 4, 64};  // small limits, so that hitting them is common

std::string transcript(const std::vector<std::string_view>& pieces, client::ReplyLimits limits) {
  client::ReplyParser parser(limits);
  std::string out;
  for (std::string_view piece : pieces) {
    parser.append(piece);
    while (auto r = parser.next()) {
      if (!r->ok()) return out + "error: " + r->error().message;
      const proto::Reply& reply = **r;
      POSTERN_FUZZ_CHECK(reply.code >= 200 && reply.code <= 599 && !reply.lines.empty());
      POSTERN_FUZZ_CHECK(reply.lines.size() <= limits.max_lines);
      for (const std::string& line : reply.lines) POSTERN_FUZZ_CHECK(line.find('\n') == std::string::npos);
      std::string wire = reply.render();
      client::ReplyParser again;
      again.append(wire);
      auto re = again.next();
      POSTERN_FUZZ_CHECK(re && re->ok() && (*re)->code == reply.code && (*re)->enhanced == reply.enhanced &&
                         (*re)->lines == reply.lines && again.empty());
      if (reply.code == 250) {
        auto caps = client::Capabilities::from_ehlo(reply);
        POSTERN_FUZZ_CHECK(caps.size || caps.size_limit == 0);
      }
      out += wire;
    }
  }
  return out;
}

}  // namespace

int postern_fuzz_smtp_reply(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (client::ReplyLimits limits : {client::ReplyLimits{}, kSmall}) {
    std::string whole = transcript({input}, limits);
    POSTERN_FUZZ_CHECK(transcript(postern::fuzz::split_pieces(input), limits) == whole);
    POSTERN_FUZZ_CHECK(transcript(postern::fuzz::split_after(input, '\r'), limits) == whole);
  }
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_smtp_reply(data, size);
}
#endif

// fuzz/smtp_client.cpp: libFuzzer target for the SMTP client session (smtp/client/session.hpp) against any
// server. The first byte picks the policy and message flags (TLS level, AUTH, 8-bit, SMTPUTF8, REQUIRETLS,
// whether the TLS handshake works); the rest is what the server sends, in pieces. Whatever it sends, the
// client writes only whole command lines, never anything after it closed, and once the session is over every
// recipient has a fate: delivered only on a 2xx reply, bounced only on a 5xx reply or a local 5.x.x check.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "smtp/client/session.hpp"

namespace {

using namespace postern::smtp::client;

bool whole_lines(std::string_view send) {
  return send.empty() || (send.size() >= 2 && send.substr(send.size() - 2) == "\r\n");
}

}  // namespace

int postern_fuzz_smtp_client(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t flags = data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  Policy policy;
  policy.helo_name = "client.example";
  policy.tls = static_cast<TlsPolicy>((flags & 3) % 3);
  if (flags & 4) policy.credentials = Credentials{"user", "secret"};
  policy.plaintext_auth_without_tls = flags & 8;
  policy.limits = ReplyLimits{256, 16, 1024};
  std::vector<Message> messages(2);
  for (Message& m : messages) {
    m.sender = "alice@client.example";
    m.recipients = {Recipient{"a@mx.example", "SUCCESS", "rfc822;a@mx.example"},
                    Recipient{"b@mx.example", {}, {}}};
    m.content = "Subject: x\n\n.dot\nend";
    m.envid = "id";
    m.eight_bit = flags & 16;
    m.smtputf8 = flags & 32;
  }
  messages[1].requiretls = flags & 64;
  bool handshake_ok = flags & 128;

  Session session(policy, messages);
  Step step = session.start();
  bool closed = false;
  // Runs the step's follow-ups that need no server bytes: the handshake and the body.
  auto settle = [&](Step s) {
    for (;;) {
      POSTERN_FUZZ_CHECK(!closed || s.send.empty());
      POSTERN_FUZZ_CHECK(whole_lines(s.send));
      if (s.next == Next::kStartTls) {
        s = session.tls_done(handshake_ok);
      } else if (s.next == Next::kSendBody) {
        std::string body;
        for (auto piece = session.body_piece(); !piece.empty(); piece = session.body_piece()) body += piece;
        POSTERN_FUZZ_CHECK(whole_lines(body));
        s = session.body_sent();
      } else {
        if (s.next == Next::kClose) closed = true;
        return;
      }
    }
  };
  settle(step);
  for (std::string_view piece : postern::fuzz::split_pieces(input)) {
    if (closed) break;
    settle(session.received(piece));
  }
  if (!closed) settle(session.connection_lost("end of input"));
  POSTERN_FUZZ_CHECK(closed && session.done());
  for (const auto& per_message : session.outcomes()) {
    for (const Outcome& o : per_message) {
      POSTERN_FUZZ_CHECK(o.fate != Fate::kPending);
      if (o.fate == Fate::kDelivered) POSTERN_FUZZ_CHECK(o.code >= 200 && o.code <= 299);
      if (o.fate == Fate::kBounced) {
        POSTERN_FUZZ_CHECK(o.code == 0 ? o.enhanced.substr(0, 2) == "5." : o.code >= 500 && o.code <= 599);
      }
      if (o.code == 0) POSTERN_FUZZ_CHECK(!o.enhanced.empty() && !o.text.empty());
    }
  }
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_smtp_client(data, size);
}
#endif

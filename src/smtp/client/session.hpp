// smtp/client/session.hpp: one outbound SMTP client session (RFC 5321 3, 4.1, 4.2, 4.5.3.2) as a pure state
// machine, in the manner of Postfix's smtp(8): greeting, EHLO (HELO when EHLO gets 5xx), STARTTLS (RFC 3207),
// AUTH PLAIN/LOGIN for a relayhost (RFC 4954), then one or more transactions with PIPELINING (RFC 2920),
// SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), BDAT (RFC 3030), DSN parameters
// (RFC 3461), REQUIRETLS (RFC 8689), RSET only between transactions that need it, and QUIT. It says what to
// send and consumes the server's bytes; the driver connects, reads, writes, runs the TLS handshake and
// applies the timeouts. Each recipient ends delivered, deferred or bounced with the reply that decided it.
// Decisions (as Postfix with its defaults unless said):
//   - a 421 anywhere ends the session at once (no QUIT): every open recipient is deferred with it;
//   - a malformed reply (reply_parser.hpp), or replies the server sent before the command, is a protocol
//     error: open recipients deferred (4.5.0), the connection closed;
//   - a 5xx greeting bounces (Postfix's smtp_skip_5xx_greeting = yes would try the next MX instead);
//   - 8-bit content to a server without 8BITMIME is sent as it is (Postfix with
//     disable_mime_output_conversion = yes; its default converts to 7 bit); BODY=8BITMIME when offered;
//   - a message larger than the server's SIZE: bounced 5.3.4 before MAIL; SMTPUTF8 needed but not offered:
//     bounced 5.6.7 before MAIL (Postfix's codes);
//   - REQUIRETLS (RFC 8689 4.2.1) without TLS or without the server's REQUIRETLS: deferred with 5.7.30, so
//     that the caller tries the next MX and bounces with that code when none is left;
//   - AUTH: PLAIN, else LOGIN, only over TLS unless Policy::plaintext_auth_without_tls (Postfix's
//     smtp_sasl_security_options = noplaintext default would refuse both even over TLS; relayhost setups
//     change it); a server without AUTH gets the mail unauthenticated, one with AUTH but no usable mechanism,
//     or a failed AUTH, defers (smtp_sasl_auth_soft_bounce = yes);
//   - DSN NOTIFY/ORCPT/RET/ENVID are sent only to a server that announced DSN (the caller sees
//     capabilities() for "relayed" notices); ENVID and ORCPT are xtext-encoded here;
//   - DATA is pipelined with MAIL and RCPT; BDAT is sent only after the RCPT replies, as one BDAT LAST;
//   - the reply to the message end applies to every accepted recipient.
// Security: every byte from the server is untrusted: bounded by ReplyLimits, malformed replies are values,
// unread bytes after the 220 to STARTTLS are discarded (no response injection), nothing of the server's
// reply is sent back. Credentials are only sent as AUTH asks for them.
//
// A driver (sketch; errors and timeouts end with connection_lost()):
//   Session s(policy, {message});
//   Step step = s.start();                       // connect within timeout_parameter(Timeout::kConnect)
//   for (;;) {
//     write(step.send);
//     if (step.next == Next::kSendBody) {
//       for (auto piece = s.body_piece(); !piece.empty(); piece = s.body_piece()) write(piece);
//       step = s.body_sent();
//       continue;
//     }
//     if (step.next == Next::kStartTls) { step = s.tls_done(handshake()); continue; }
//     if (step.next == Next::kClose) break;
//     auto bytes = read(timeout_parameter(step.timeout));   // EOF, error or timeout:
//     step = bytes ? s.received(*bytes) : s.connection_lost("lost connection"); // (returns kClose)
//   }
//   close(); for each s.outcomes()[m][r]: delivered, deferred (try the next MX for the greeting stage) or
//   bounced, logged as "host mx[1.2.3.4] said: " + code + " " + enhanced + " " + text when code != 0.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/client/body.hpp"
#include "smtp/client/capabilities.hpp"
#include "smtp/client/reply_parser.hpp"
#include "smtp/proto/reply.hpp"

namespace postern::smtp::client {

// smtp_tls_security_level: none (never STARTTLS), may (when offered), encrypt (required).
enum class TlsPolicy { kNone, kMay, kEncrypt };

struct Credentials {
  std::string user;
  std::string password;
};

struct Policy {
  std::string helo_name;  // myhostname (smtp_helo_name)
  TlsPolicy tls = TlsPolicy::kMay;
  std::optional<Credentials> credentials;  // AUTH to a relayhost
  bool plaintext_auth_without_tls = false;
  // After the last message the session goes idle instead of sending QUIT, so that the connection can carry
  // the next message to the same destination (Postfix's connection cache): see reusable().
  bool keep_open = false;
  ReplyLimits limits;
};

// What a session that went idle knows about its connection, for the next session on it.
struct Resume {
  Capabilities caps;
  bool tls_active = false;
  bool auth_done = false;
};

struct Recipient {
  std::string address;  // without <>
  std::string notify;   // DSN NOTIFY value ("SUCCESS,FAILURE", "NEVER"); empty: none
  std::string orcpt;    // DSN ORCPT as "rfc822;addr" (type;address, not encoded); empty: none
};

struct Message {
  std::string sender;  // empty: the null sender <>
  std::vector<Recipient> recipients;
  std::string envid;          // DSN ENVID, not encoded; empty: none
  std::string ret;            // DSN RET: "FULL" or "HDRS"; empty: none
  std::string_view content;   // the message, LF line ends; must outlive the session
  bool eight_bit = false;     // content has 8-bit bytes (BODY=8BITMIME)
  bool smtputf8 = false;      // an address or header needs SMTPUTF8
  bool requiretls = false;    // RFC 8689: deliver only over TLS to a REQUIRETLS server
  bool tls_optional = false;  // RFC 8689 "TLS-Required: No": recipient TLS policies (DANE) do not apply
};

// Where a recipient's fate was decided.
enum class Stage { kConnect, kGreeting, kHelo, kStartTls, kAuth, kMail, kRcpt, kData, kDataDone, kQuit };
// "greeting", "EHLO/HELO", "STARTTLS", "AUTH", "MAIL FROM", "RCPT TO", "DATA", "end of data", ...
std::string_view stage_name(Stage stage);

enum class Fate { kPending, kDelivered, kDeferred, kBounced };

struct Outcome {
  Fate fate = Fate::kPending;
  Stage stage = Stage::kConnect;
  int code = 0;          // the server's reply code; 0: Postern decided (no reply, or a local check)
  std::string enhanced;  // "5.1.1"; for code 0 always set (Postern's own)
  std::string text;      // the reply's lines joined by spaces, or Postern's reason
};

// The timeout that applies to the next read (Postfix's parameter names, with their defaults).
enum class Timeout {
  kConnect,
  kHelo,
  kStartTls,
  kAuth,
  kMail,
  kRcpt,
  kDataInit,
  kDataXfer,
  kDataDone,
  kQuit
};
// "smtp_helo_timeout", ...: the config parameter that holds it (AUTH replies wait smtp_helo_timeout).
std::string_view timeout_parameter(Timeout timeout);

enum class Next {
  kRead,      // send `send`, then read the server's reply bytes and pass them to received()
  kStartTls,  // send `send` (nothing), run the TLS handshake, call tls_done()
  kSendBody,  // send `send`, then every body_piece() until empty, then call body_sent()
  kClose,     // send `send` (may be empty), then close the connection: the session is over
};

struct Step {
  std::string send;
  Next next = Next::kRead;
  Timeout timeout = Timeout::kHelo;
};

class Session {
 public:
  Session(Policy policy, std::vector<Message> messages);
  // On a connection an earlier session left idle: it starts with RSET, which also proves that the connection
  // still works; when it does not (no reply, or not 250), the recipients are deferred at Stage::kConnect, so
  // that the caller connects afresh.
  Session(Policy policy, std::vector<Message> messages, Resume resume);

  // After connecting: wait for the greeting (RSET first on a resumed connection).
  Step start() const;
  Step received(std::string_view bytes);
  // The TLS handshake after kStartTls succeeded (`ok`) or failed, or the peer did not pass the check the
  // driver required (the session ends: deferred 4.7.5 with `why`).
  Step tls_done(bool ok, std::string_view why = "TLS handshake failed");
  // During kSendBody: the next piece of the message's wire form; empty at the end.
  std::string_view body_piece() { return body_ ? body_->next() : std::string_view(); }
  Step body_sent();
  // The connection broke or a read timed out: every open recipient is deferred (4.4.2, `why`).
  Step connection_lost(std::string_view why);

  bool done() const { return phase_ == Phase::kDone || phase_ == Phase::kIdle; }
  // Every message is through and the connection is left open, between transactions (Policy::keep_open).
  bool reusable() const { return phase_ == Phase::kIdle; }
  Resume resume() const { return Resume{caps_, tls_active_, auth_done_}; }
  // Per message, per recipient, in the order given.
  const std::vector<std::vector<Outcome>>& outcomes() const { return outcomes_; }
  const Capabilities& capabilities() const { return caps_; }
  bool tls_active() const { return tls_active_; }

 private:
  enum class Phase { kGreeting, kResume, kEhlo, kHelo, kStartTls, kAuth, kTransaction, kQuit, kIdle, kDone };
  // What a reply in the transaction phase answers.
  enum class Expect { kRset, kMail, kRcpt, kData, kEnd, kIgnored };
  struct Pending {
    Expect what;
    size_t rcpt = 0;  // for kRcpt
  };

  Step on_reply(const proto::Reply& reply);
  Step on_greeting(const proto::Reply& reply);
  Step on_resume(const proto::Reply& reply);
  Step on_ehlo(const proto::Reply& reply);
  Step on_starttls(const proto::Reply& reply);
  Step on_auth(const proto::Reply& reply);
  Step on_transaction(const proto::Reply& reply);
  // After EHLO (or HELO): STARTTLS, AUTH or the first transaction.
  Step after_hello();
  Step start_auth();
  // The next transaction that passes the local checks, or QUIT (or idle, with keep_open).
  Step next_message();
  Step send_mail();
  Step send_rcpt_or_data();
  // This message is over; RSET before the next when the server may still hold a transaction.
  Step finish_message(bool need_rset);
  Step quit();
  Step close();
  Step waiting() const;
  Timeout timeout_now() const;

  // Sets every open recipient of message `m` (all messages when m is npos) to `fate`.
  void fail_open(size_t m, Fate fate, Stage stage, const proto::Reply* reply, std::string_view enhanced,
                 std::string_view text);
  static void settle(Outcome& o, Fate fate, Stage stage, const proto::Reply* reply, std::string_view enhanced,
                     std::string_view text);
  // The reply fails the whole session: open recipients deferred (or bounced for 5xx), QUIT unless 421.
  Step fail_session(const proto::Reply& reply, Stage stage);
  Step protocol_error(std::string_view what);
  Stage current_stage() const;

  Policy policy_;
  std::vector<Message> messages_;
  std::vector<std::vector<Outcome>> outcomes_;
  ReplyParser parser_;
  Phase phase_ = Phase::kGreeting;
  Capabilities caps_;
  bool tls_active_ = false;
  bool auth_done_ = false;
  bool auth_login_ = false;  // AUTH LOGIN (else PLAIN)
  int auth_step_ = 0;        // AUTH LOGIN: 334 replies answered

  // The current message.
  size_t msg_ = 0;
  bool mail_ok_ = false;
  size_t next_rcpt_ = 0;          // without PIPELINING: the next RCPT to send
  std::vector<size_t> accepted_;  // recipients the server took
  std::deque<Pending> expect_;    // replies still due, in order
  std::optional<BodyEncoder> body_;
  bool rset_needed_ = false;
};

// RFC 3461 4: xtext ("+" and "=" and bytes outside 33..126 as +XX).
std::string xtext(std::string_view s);

}  // namespace postern::smtp::client

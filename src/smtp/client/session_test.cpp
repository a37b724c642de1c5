#include "smtp/client/session.hpp"

#include <gtest/gtest.h>

#include "auth/sasl/base64.hpp"
#include "config/config.hpp"
#include "config/parameters.hpp"

namespace postern::smtp::client {
namespace {

constexpr std::string_view kEhloAll =
    "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-DSN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n";
constexpr std::string_view kEhloPlain = "250-mx.example.test\r\n250 ENHANCEDSTATUSCODES\r\n";

Policy policy(TlsPolicy tls = TlsPolicy::kNone) {
  Policy p;
  p.helo_name = "client.example";
  p.tls = tls;
  return p;
}

Message message(std::vector<std::string> rcpts, std::string_view content = "Subject: hi\n\n.dot\nbye\n") {
  Message m;
  m.sender = "alice@client.example";
  for (std::string& r : rcpts) m.recipients.push_back(Recipient{std::move(r), {}, {}});
  m.content = content;
  return m;
}

// A session driven over no socket: say() hands it the server's bytes and returns what the client sends, the
// message body included, and "<starttls>" or "<close>" when it asks for that.
class Dialogue {
 public:
  Dialogue(Policy p, std::vector<Message> messages) : session_(std::move(p), std::move(messages)) {
    EXPECT_EQ(session_.start().next, Next::kRead);
  }
  // On a connection an earlier session left idle.
  Dialogue(Policy p, std::vector<Message> messages, Resume resume)
      : session_(std::move(p), std::move(messages), std::move(resume)) {}

  std::string say(std::string_view bytes) { return render(session_.received(bytes)); }
  std::string render(Step step) {
    last_ = step;
    std::string out = step.send;
    if (step.next == Next::kSendBody) {
      for (std::string_view piece = session_.body_piece(); !piece.empty(); piece = session_.body_piece()) {
        out += piece;
      }
      out += render(session_.body_sent());
    }
    if (step.next == Next::kStartTls) out += "<starttls>";
    if (step.next == Next::kClose) out += "<close>";
    return out;
  }
  // Up to the mail transaction, over a server announcing `ehlo`.
  void hello(std::string_view ehlo, std::string_view expect_after) {
    EXPECT_EQ(say("220 mx.example.test ESMTP\r\n"), "EHLO client.example\r\n");
    EXPECT_EQ(say(ehlo), expect_after);
  }
  // "address fate stage code enhanced text" per recipient, one line each.
  std::string fates() const {
    std::string out;
    for (size_t m = 0; m < session_.outcomes().size(); ++m) {
      for (const Outcome& o : session_.outcomes()[m]) {
        static constexpr const char* kFate[] = {"pending", "delivered", "deferred", "bounced"};
        out += std::string(kFate[static_cast<int>(o.fate)]) + " " + std::string(stage_name(o.stage)) + " " +
               std::to_string(o.code) + " " + o.enhanced + " " + o.text + "\n";
      }
    }
    return out;
  }

  Session session_;
  Step last_;
};

TEST(ClientSession, PipelinedTransaction) {
  Message m = message({"bob@mx.example.test", "carol+x=y@mx.example.test"}, "Subject: hi\n\n.dot\nbye\n");
  m.eight_bit = true;
  m.envid = "id 1";
  m.ret = "HDRS";
  m.recipients[1].notify = "SUCCESS,FAILURE";
  m.recipients[1].orcpt = "rfc822;carol+x=y@mx.example.test";
  Dialogue d(policy(), {m});
  d.hello(kEhloAll,
          "MAIL FROM:<alice@client.example> SIZE=22 BODY=8BITMIME RET=HDRS ENVID=id+201\r\n"
          "RCPT TO:<bob@mx.example.test>\r\n"
          "RCPT TO:<carol+x=y@mx.example.test> NOTIFY=SUCCESS,FAILURE "
          "ORCPT=rfc822;carol+2Bx+3Dy@mx.example.test\r\n"
          "DATA\r\n");
  EXPECT_EQ(d.last_.timeout, Timeout::kMail);
  EXPECT_EQ(d.say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"), "");
  EXPECT_EQ(d.last_.timeout, Timeout::kRcpt);
  EXPECT_EQ(d.say("250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),
            "Subject: hi\r\n\r\n..dot\r\nbye\r\n.\r\n");
  EXPECT_EQ(d.last_.timeout, Timeout::kDataDone);
  EXPECT_EQ(d.say("250 2.0.0 Ok: queued as 4Xyz\r\n"), "QUIT\r\n");
  EXPECT_EQ(d.last_.timeout, Timeout::kQuit);
  EXPECT_EQ(d.say("221 2.0.0 Bye\r\n"), "<close>");
  EXPECT_TRUE(d.session_.done());
  EXPECT_EQ(d.fates(),
            "delivered end of data 250 2.0.0 Ok: queued as 4Xyz\n"
            "delivered end of data 250 2.0.0 Ok: queued as 4Xyz\n");
}

TEST(ClientSession, PipelinedRepliesSplitAtEveryByte) {
  const std::string replies =
      "250 2.1.0 Ok\r\n550 5.1.1 <bob@mx.example.test>: User unknown\r\n250 2.1.5 Ok\r\n"
      "354 go\r\n";
  std::string expected_fates;
  for (size_t cut = 0; cut <= replies.size(); ++cut) {
    for (size_t cut2 = cut; cut2 <= replies.size(); cut2 += 7) {
      Dialogue d(policy(), {message({"bob@mx.example.test", "carol@mx.example.test"}, "x\n")});
      d.hello(kEhloAll,
              "MAIL FROM:<alice@client.example> SIZE=2\r\nRCPT TO:<bob@mx.example.test>\r\n"
              "RCPT TO:<carol@mx.example.test>\r\nDATA\r\n");
      std::string sent = d.say(replies.substr(0, cut));
      sent += d.say(replies.substr(cut, cut2 - cut));
      sent += d.say(replies.substr(cut2));
      EXPECT_EQ(sent, "x\r\n.\r\n") << cut << " " << cut2;
      EXPECT_EQ(d.say("250 2.0.0 Ok\r\n"), "QUIT\r\n");
      std::string f = d.fates();
      EXPECT_EQ(f,
                "bounced RCPT TO 550 5.1.1 <bob@mx.example.test>: User unknown\n"
                "delivered end of data 250 2.0.0 Ok\n");
    }
  }
}

TEST(ClientSession, WithoutPipeliningOneCommandAtATime) {
  Dialogue d(policy(), {message({"a@mx.example.test", "b@mx.example.test", "c@mx.example.test"})});
  d.hello(kEhloPlain, "MAIL FROM:<alice@client.example>\r\n");
  EXPECT_EQ(d.say("250 2.1.0 Ok\r\n"), "RCPT TO:<a@mx.example.test>\r\n");
  EXPECT_EQ(d.last_.timeout, Timeout::kRcpt);
  EXPECT_EQ(d.say("450 4.2.0 greylisted\r\n"), "RCPT TO:<b@mx.example.test>\r\n");
  EXPECT_EQ(d.say("250 2.1.5 Ok\r\n"), "RCPT TO:<c@mx.example.test>\r\n");
  EXPECT_EQ(d.say("550 5.7.1 no\r\n"), "DATA\r\n");
  EXPECT_EQ(d.say("354 go\r\n"), "Subject: hi\r\n\r\n..dot\r\nbye\r\n.\r\n");
  // The end-of-data reply applies to the accepted recipient only.
  EXPECT_EQ(d.say("552 5.3.4 too big after all\r\n"), "QUIT\r\n");
  EXPECT_EQ(d.fates(),
            "deferred RCPT TO 450 4.2.0 greylisted\n"
            "bounced end of data 552 5.3.4 too big after all\n"
            "bounced RCPT TO 550 5.7.1 no\n");
}

TEST(ClientSession, AllRecipientsRefusedNoDataThenRset) {
  Dialogue d(policy(), {message({"a@mx.example.test"}), message({"b@mx.example.test"})});
  d.hello(kEhloPlain, "MAIL FROM:<alice@client.example>\r\n");
  EXPECT_EQ(d.say("250 2.1.0 Ok\r\n"), "RCPT TO:<a@mx.example.test>\r\n");
  // No DATA; the next message starts with RSET since MAIL was taken.
  EXPECT_EQ(d.say("550 5.1.1 unknown\r\n"), "RSET\r\n");
  EXPECT_EQ(d.say("250 2.0.0 Ok\r\n"), "MAIL FROM:<alice@client.example>\r\n");
  // MAIL refused: no transaction is open, no RSET needed; the recipient takes MAIL's reply.
  EXPECT_EQ(d.say("451 4.3.0 try later\r\n"), "QUIT\r\n");
  EXPECT_EQ(d.fates(), "bounced RCPT TO 550 5.1.1 unknown\ndeferred MAIL FROM 451 4.3.0 try later\n");
}

TEST(ClientSession, PipelinedAllRefused) {
  Dialogue d(policy(), {message({"a@mx.example.test", "b@mx.example.test"}), message({"c@mx.example.test"})});
  d.hello(kEhloAll,
          "MAIL FROM:<alice@client.example> SIZE=22\r\nRCPT TO:<a@mx.example.test>\r\n"
          "RCPT TO:<b@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(
      d.say("250 2.1.0 Ok\r\n550 5.1.1 a unknown\r\n450 4.1.1 b later\r\n554 5.5.1 No valid recipients\r\n"),
      "RSET\r\nMAIL FROM:<alice@client.example> SIZE=22\r\nRCPT TO:<c@mx.example.test>\r\nDATA\r\n");
  // A server that says 354 anyway gets an empty message (RFC 2920 3.1).
  EXPECT_EQ(d.say("250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n550 5.1.1 c unknown\r\n354 go\r\n"), ".\r\n");
  EXPECT_EQ(d.say("554 5.5.1 no recipients\r\n"), "QUIT\r\n");
  EXPECT_EQ(d.fates(),
            "bounced RCPT TO 550 5.1.1 a unknown\ndeferred RCPT TO 450 4.1.1 b later\n"
            "bounced RCPT TO 550 5.1.1 c unknown\n");
}

TEST(ClientSession, PipelinedMailRefused) {
  Dialogue d(policy(), {message({"a@mx.example.test", "b@mx.example.test"})});
  d.hello(kEhloAll,
          "MAIL FROM:<alice@client.example> SIZE=22\r\nRCPT TO:<a@mx.example.test>\r\n"
          "RCPT TO:<b@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(d.say("553 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
                  "503 5.5.1 need MAIL\r\n"),
            "QUIT\r\n");
  EXPECT_EQ(d.fates(),
            "bounced MAIL FROM 553 5.7.1 sender refused\nbounced MAIL FROM 553 5.7.1 sender refused\n");
}

TEST(ClientSession, SeveralMessagesOneConnection) {
  Dialogue d(policy(), {message({"a@mx.example.test"}, "one\n"), message({"b@mx.example.test"}, "two\n")});
  d.hello(kEhloAll, "MAIL FROM:<alice@client.example> SIZE=4\r\nRCPT TO:<a@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(d.say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"), "one\r\n.\r\n");
  // No RSET after a completed message.
  EXPECT_EQ(d.say("250 2.0.0 Ok: queued as A\r\n"),
            "MAIL FROM:<alice@client.example> SIZE=4\r\nRCPT TO:<b@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(d.say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"), "two\r\n.\r\n");
  EXPECT_EQ(d.say("250 2.0.0 Ok: queued as B\r\n"), "QUIT\r\n");
  EXPECT_EQ(d.say("221 2.0.0 Bye\r\n"), "<close>");
  EXPECT_EQ(d.fates(),
            "delivered end of data 250 2.0.0 Ok: queued as A\n"
            "delivered end of data 250 2.0.0 Ok: queued as B\n");
}

TEST(ClientSession, KeepOpenGoesIdleInsteadOfQuit) {
  Policy p = policy();
  p.keep_open = true;
  Dialogue d(p, {message({"a@mx.example.test"}, "one\n")});
  d.hello(kEhloAll, "MAIL FROM:<alice@client.example> SIZE=4\r\nRCPT TO:<a@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(d.say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"), "one\r\n.\r\n");
  EXPECT_EQ(d.say("250 2.0.0 Ok: queued as A\r\n"), "<close>");
  EXPECT_TRUE(d.session_.reusable());
  EXPECT_TRUE(d.session_.done());
  Resume r = d.session_.resume();
  EXPECT_TRUE(r.caps.pipelining);
  EXPECT_EQ(r.caps.size_limit, 1000u);

  // The next session on that connection: RSET proves it alive, then the transaction as before.
  Dialogue next(p, {message({"b@mx.example.test"}, "two\n")}, r);
  EXPECT_EQ(next.render(next.session_.start()), "RSET\r\n");
  EXPECT_EQ(next.say("250 2.0.0 Ok\r\n"),
            "MAIL FROM:<alice@client.example> SIZE=4\r\nRCPT TO:<b@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(next.say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"), "two\r\n.\r\n");
  EXPECT_EQ(next.say("250 2.0.0 Ok: queued as B\r\n"), "<close>");
  EXPECT_EQ(next.fates(), "delivered end of data 250 2.0.0 Ok: queued as B\n");
  EXPECT_TRUE(next.session_.reusable());

  // A session that ended otherwise leaves nothing to reuse.
  Dialogue refused(p, {message({"c@mx.example.test"})}, r);
  EXPECT_EQ(refused.render(refused.session_.start()), "RSET\r\n");
  EXPECT_EQ(refused.say("421 4.4.2 gone\r\n"), "<close>");
  EXPECT_FALSE(refused.session_.reusable());
}

TEST(ClientSession, DeadCachedConnectionDefersAtConnect) {
  // The cached connection broke while idle: deferred at the connect stage, so the caller connects again.
  Dialogue lost(policy(), {message({"a@mx.example.test"})}, Resume{});
  EXPECT_EQ(lost.render(lost.session_.start()), "RSET\r\n");
  EXPECT_EQ(lost.render(lost.session_.connection_lost("lost connection")), "<close>");
  EXPECT_EQ(lost.fates(), "deferred connect 0 4.4.2 lost connection\n");
  Dialogue refused(policy(), {message({"a@mx.example.test"})}, Resume{});
  refused.render(refused.session_.start());
  EXPECT_EQ(refused.say("500 5.5.1 what?\r\n"), "QUIT\r\n");
  EXPECT_EQ(refused.fates(), "deferred connect 500 5.5.1 what?\n");
}

TEST(ClientSession, HeloFallback) {
  Message m = message({"a@mx.example.test"});
  m.eight_bit = true;
  Dialogue d(policy(), {m});
  EXPECT_EQ(d.say("220 old.example SMTP\r\n"), "EHLO client.example\r\n");
  EXPECT_EQ(d.say("502 5.5.2 Command not recognized\r\n"), "HELO client.example\r\n");
  // No extensions: plain MAIL, 8-bit content sent as it is, one command at a time.
  EXPECT_EQ(d.say("250 old.example\r\n"), "MAIL FROM:<alice@client.example>\r\n");
  EXPECT_EQ(d.say("250 ok\r\n"), "RCPT TO:<a@mx.example.test>\r\n");
  EXPECT_EQ(d.say("250 ok\r\n"), "DATA\r\n");
}

TEST(ClientSession, EhloTemporaryFailureAndHeloRefused) {
  Dialogue d(policy(), {message({"a@mx.example.test"})});
  EXPECT_EQ(d.say("220 mx\r\n"), "EHLO client.example\r\n");
  EXPECT_EQ(d.say("451 4.3.0 later\r\n"), "QUIT\r\n");
  EXPECT_EQ(d.fates(), "deferred EHLO/HELO 451 4.3.0 later\n");
  Dialogue h(policy(), {message({"a@mx.example.test"})});
  EXPECT_EQ(h.say("220 mx\r\n"), "EHLO client.example\r\n");
  EXPECT_EQ(h.say("500 what\r\n"), "HELO client.example\r\n");
  EXPECT_EQ(h.say("501 5.5.4 bad name\r\n"), "QUIT\r\n");
  EXPECT_EQ(h.fates(), "bounced EHLO/HELO 501 5.5.4 bad name\n");
}

TEST(ClientSession, GreetingFailures) {
  Dialogue soft(policy(), {message({"a@mx.example.test"}), message({"b@mx.example.test"})});
  EXPECT_EQ(soft.say("450-mx busy\r\n450 come back later\r\n"), "QUIT\r\n");
  EXPECT_EQ(soft.fates(),
            "deferred greeting 450  mx busy come back later\n"
            "deferred greeting 450  mx busy come back later\n");
  Dialogue hard(policy(), {message({"a@mx.example.test"})});
  EXPECT_EQ(hard.say("554 5.7.1 no mail here\r\n"), "QUIT\r\n");
  EXPECT_EQ(hard.fates(), "bounced greeting 554 5.7.1 no mail here\n");
  EXPECT_EQ(hard.say("221 bye\r\n"), "<close>");
  // 421: the server is closing; no QUIT.
  Dialogue closing(policy(), {message({"a@mx.example.test"})});
  EXPECT_EQ(closing.say("421 4.3.2 shutting down\r\n"), "<close>");
  EXPECT_EQ(closing.fates(), "deferred greeting 421 4.3.2 shutting down\n");
}

TEST(ClientSession, ServiceClosingInTheMiddle) {
  Dialogue d(policy(), {message({"a@mx.example.test", "b@mx.example.test"}), message({"c@mx.example.test"})});
  d.hello(kEhloAll,
          "MAIL FROM:<alice@client.example> SIZE=22\r\nRCPT TO:<a@mx.example.test>\r\n"
          "RCPT TO:<b@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(d.say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n421 4.4.2 timeout, closing\r\n"), "<close>");
  EXPECT_EQ(d.fates(),
            "deferred RCPT TO 421 4.4.2 timeout, closing\n"
            "deferred RCPT TO 421 4.4.2 timeout, closing\n"
            "deferred RCPT TO 421 4.4.2 timeout, closing\n");
  // The same after the message: what was delivered stays delivered.
  Dialogue e(policy(), {message({"a@mx.example.test"}, "x\n"), message({"c@mx.example.test"})});
  e.hello(kEhloAll, "MAIL FROM:<alice@client.example> SIZE=2\r\nRCPT TO:<a@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(e.say("250 ok\r\n250 ok\r\n354 go\r\n"), "x\r\n.\r\n");
  EXPECT_EQ(e.say("250 2.0.0 queued\r\n"),
            "MAIL FROM:<alice@client.example> SIZE=22\r\nRCPT TO:<c@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(e.say("421 4.3.2 bye now\r\n"), "<close>");
  EXPECT_EQ(e.fates(), "delivered end of data 250 2.0.0 queued\ndeferred MAIL FROM 421 4.3.2 bye now\n");
}

TEST(ClientSession, GarbageIsAProtocolError) {
  Dialogue d(policy(), {message({"a@mx.example.test"})});
  d.hello(kEhloAll, "MAIL FROM:<alice@client.example> SIZE=22\r\nRCPT TO:<a@mx.example.test>\r\nDATA\r\n");
  EXPECT_EQ(d.say("250 2.1.0 Ok\r\nHTTP/1.1 400 Bad Request\r\n"), "<close>");
  EXPECT_EQ(d.fates(),
            "deferred RCPT TO 0 4.5.0 protocol error: malformed reply line: HTTP/1.1 400 Bad Request\n");
  // Replies sent ahead of the command they would answer.
  Dialogue e(policy(), {message({"a@mx.example.test"})});
  EXPECT_EQ(e.say("220 mx\r\n250 mx\r\n"), "<close>");
  EXPECT_EQ(e.fates(), "deferred EHLO/HELO 0 4.5.0 protocol error: reply data ahead of the command\n");
  // A 3xx where none belongs ends the session like any other refusal.
  Dialogue f(policy(), {message({"a@mx.example.test"})});
  f.hello(kEhloPlain, "MAIL FROM:<alice@client.example>\r\n");
  EXPECT_EQ(f.say("354 what\r\n"), "QUIT\r\n");
  EXPECT_EQ(f.fates(), "deferred MAIL FROM 354  what\n");
}

TEST(ClientSession, ConnectionLost) {
  Dialogue d(policy(), {message({"a@mx.example.test"})});
  d.hello(kEhloPlain, "MAIL FROM:<alice@client.example>\r\n");
  EXPECT_EQ(d.say("250 ok\r\n"), "RCPT TO:<a@mx.example.test>\r\n");
  EXPECT_EQ(d.say("250 ok\r\n"), "DATA\r\n");
  EXPECT_EQ(d.render(d.session_.connection_lost("lost connection")), "<close>");
  EXPECT_EQ(d.fates(), "deferred DATA 0 4.4.2 lost connection\n");
  // After QUIT nothing is open: losing the connection changes nothing.
  Dialogue q(policy(), {message({"a@mx.example.test"})});
  EXPECT_EQ(q.say("554 no\r\n"), "QUIT\r\n");
  EXPECT_EQ(q.render(q.session_.connection_lost("lost connection")), "<close>");
  EXPECT_EQ(q.fates(), "bounced greeting 554  no\n");
}

TEST(ClientSession, StartTls) {
  Dialogue d(policy(TlsPolicy::kMay), {message({"a@mx.example.test"})});
  EXPECT_EQ(d.say("220 mx\r\n"), "EHLO client.example\r\n");
  EXPECT_EQ(d.say("250-mx\r\n250-SIZE 1000\r\n250 STARTTLS\r\n"), "STARTTLS\r\n");
  EXPECT_EQ(d.last_.timeout, Timeout::kStartTls);
  // Bytes sent in the clear after the 220 are dropped, not taken as replies inside TLS.
  EXPECT_EQ(d.say("220 2.0.0 Ready to start TLS\r\n250 injected\r\n"), "<starttls>");
  EXPECT_EQ(d.render(d.session_.tls_done(true)), "EHLO client.example\r\n");
  EXPECT_TRUE(d.session_.tls_active());
  // What was learned before TLS is forgotten (no SIZE now).
  EXPECT_EQ(d.say("250-mx\r\n250 STARTTLS\r\n"), "MAIL FROM:<alice@client.example>\r\n");
  EXPECT_FALSE(d.session_.capabilities().size);
}

TEST(ClientSession, StartTlsPolicies) {
  // encrypt without STARTTLS: nothing of the mail is sent.
  Dialogue enc(policy(TlsPolicy::kEncrypt), {message({"a@mx.example.test"})});
  enc.hello(kEhloAll, "QUIT\r\n");
  EXPECT_EQ(enc.fates(), "deferred STARTTLS 0 4.7.4 TLS is required, but was not offered by the server\n");
  // none: STARTTLS offered but not used.
  Dialogue none(policy(TlsPolicy::kNone), {message({"a@mx.example.test"})});
  none.hello("250-mx\r\n250 STARTTLS\r\n", "MAIL FROM:<alice@client.example>\r\n");
  // may: a refused STARTTLS goes on in the clear; encrypt defers.
  Dialogue may(policy(TlsPolicy::kMay), {message({"a@mx.example.test"})});
  may.hello("250-mx\r\n250 STARTTLS\r\n", "STARTTLS\r\n");
  EXPECT_EQ(may.say("454 4.7.0 TLS not available\r\n"), "MAIL FROM:<alice@client.example>\r\n");
  Dialogue refused(policy(TlsPolicy::kEncrypt), {message({"a@mx.example.test"})});
  refused.hello("250-mx\r\n250 STARTTLS\r\n", "STARTTLS\r\n");
  EXPECT_EQ(refused.say("454 4.7.0 TLS not available\r\n"), "QUIT\r\n");
  EXPECT_EQ(refused.fates(), "deferred STARTTLS 454 4.7.0 TLS not available\n");
  // A failed handshake ends the connection.
  Dialogue failed(policy(TlsPolicy::kMay), {message({"a@mx.example.test"})});
  failed.hello("250-mx\r\n250 STARTTLS\r\n", "STARTTLS\r\n");
  EXPECT_EQ(failed.say("220 go\r\n"), "<starttls>");
  EXPECT_EQ(failed.render(failed.session_.tls_done(false)), "<close>");
  EXPECT_EQ(failed.fates(), "deferred STARTTLS 0 4.7.5 TLS handshake failed\n");
}

TEST(ClientSession, SizeLimitBouncesBeforeMail) {
  Dialogue d(policy(), {message({"a@mx.example.test"}, std::string_view("0123456789abc\n")),
                        message({"b@mx.example.test"}, "small\n")});
  d.hello("250-mx\r\n250 SIZE 10\r\n", "MAIL FROM:<alice@client.example> SIZE=6\r\n");
  EXPECT_EQ(
      d.fates(),
      "bounced MAIL FROM 0 5.3.4 message size 14 exceeds size limit 10 of the server\npending connect 0  \n");
}

TEST(ClientSession, Smtputf8) {
  Message m = message({"jörg@mx.example.test"});
  m.smtputf8 = true;
  Dialogue without(policy(), {m});
  without.hello(kEhloPlain, "QUIT\r\n");
  EXPECT_EQ(without.fates(),
            "bounced MAIL FROM 0 5.6.7 SMTPUTF8 is required, but was not offered by the server\n");
  Dialogue with(policy(), {m});
  with.hello(
      kEhloAll,
      "MAIL FROM:<alice@client.example> SIZE=22 SMTPUTF8\r\nRCPT TO:<jörg@mx.example.test>\r\nDATA\r\n");
}

TEST(ClientSession, Chunking) {
  Dialogue d(policy(), {message({"a@mx.example.test", "b@mx.example.test"}, ".x\nend")});
  d.hello(
      "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
      "MAIL FROM:<alice@client.example>\r\nRCPT TO:<a@mx.example.test>\r\nRCPT TO:<b@mx.example.test>\r\n");
  // BDAT after the RCPT replies, the message unstuffed with CRLF line ends.
  EXPECT_EQ(d.say("250 ok\r\n250 ok\r\n550 no\r\n"), "BDAT 9 LAST\r\n.x\r\nend\r\n");
  EXPECT_EQ(d.last_.timeout, Timeout::kDataDone);
  EXPECT_EQ(d.say("250 2.0.0 queued\r\n"), "QUIT\r\n");
  EXPECT_EQ(d.fates(), "delivered end of data 250 2.0.0 queued\nbounced RCPT TO 550  no\n");
}

TEST(ClientSession, AuthPlainOverTls) {
  Policy p = policy(TlsPolicy::kMay);
  p.credentials = Credentials{"user", "secret"};
  Dialogue d(p, {message({"a@mx.example.test"})});
  d.hello("250-relay\r\n250-STARTTLS\r\n250 AUTH LOGIN PLAIN\r\n", "STARTTLS\r\n");
  EXPECT_EQ(d.say("220 go\r\n"), "<starttls>");
  EXPECT_EQ(d.render(d.session_.tls_done(true)), "EHLO client.example\r\n");
  EXPECT_EQ(d.say("250-relay\r\n250 AUTH LOGIN PLAIN\r\n"),
            "AUTH PLAIN " + auth::sasl::base64_encode(std::string("\0user\0secret", 12)) + "\r\n");
  EXPECT_EQ(d.say("235 2.7.0 Authentication successful\r\n"), "MAIL FROM:<alice@client.example>\r\n");
}

TEST(ClientSession, AuthLoginAndFailures) {
  Policy p = policy();
  p.credentials = Credentials{"user", "secret"};
  p.plaintext_auth_without_tls = true;
  Dialogue d(p, {message({"a@mx.example.test"})});
  d.hello("250-relay\r\n250 AUTH=LOGIN\r\n", "AUTH LOGIN\r\n");
  EXPECT_EQ(d.say("334 VXNlcm5hbWU6\r\n"), "dXNlcg==\r\n");
  EXPECT_EQ(d.say("334 UGFzc3dvcmQ6\r\n"), "c2VjcmV0\r\n");
  // A refused login defers (soft bounce): the administrator fixes the password.
  EXPECT_EQ(d.say("535 5.7.8 Authentication credentials invalid\r\n"), "QUIT\r\n");
  EXPECT_EQ(d.fates(), "deferred AUTH 535 5.7.8 Authentication credentials invalid\n");
  // Not over a plaintext connection unless allowed.
  p.plaintext_auth_without_tls = false;
  Dialogue clear(p, {message({"a@mx.example.test"})});
  clear.hello("250-relay\r\n250 AUTH PLAIN\r\n", "QUIT\r\n");
  EXPECT_EQ(clear.fates(),
            "deferred AUTH 0 4.7.0 SASL authentication failed: PLAIN and LOGIN are used only over TLS\n");
  // No mechanism in common.
  p.plaintext_auth_without_tls = true;
  Dialogue cram(p, {message({"a@mx.example.test"})});
  cram.hello("250-relay\r\n250 AUTH CRAM-MD5\r\n", "QUIT\r\n");
  EXPECT_EQ(cram.fates(),
            "deferred AUTH 0 4.7.0 SASL authentication failed: the server offers neither PLAIN nor LOGIN\n");
  // No AUTH at all: the mail goes unauthenticated.
  Dialogue none(p, {message({"a@mx.example.test"})});
  none.hello(kEhloPlain, "MAIL FROM:<alice@client.example>\r\n");
}

TEST(ClientSession, RequireTls) {
  Message m = message({"a@mx.example.test"});
  m.requiretls = true;
  Dialogue clear(policy(), {m});
  clear.hello("250-mx\r\n250 REQUIRETLS\r\n", "QUIT\r\n");
  EXPECT_EQ(clear.fates(), "deferred MAIL FROM 0 5.7.30 REQUIRETLS support required\n");
  Dialogue tls(policy(TlsPolicy::kEncrypt), {m});
  tls.hello("250-mx\r\n250 STARTTLS\r\n", "STARTTLS\r\n");
  EXPECT_EQ(tls.say("220 go\r\n"), "<starttls>");
  EXPECT_EQ(tls.render(tls.session_.tls_done(true)), "EHLO client.example\r\n");
  EXPECT_EQ(tls.say("250-mx\r\n250 REQUIRETLS\r\n"), "MAIL FROM:<alice@client.example> REQUIRETLS\r\n");
}

TEST(ClientSession, LineBreaksInAddressesNeverReachTheWire) {
  Dialogue d(policy(), {message({"a@mx.example.test\r\nRSET"}), message({"b@mx.example.test"})});
  d.hello(kEhloPlain, "MAIL FROM:<alice@client.example>\r\n");
  EXPECT_EQ(d.fates(),
            "bounced MAIL FROM 0 5.1.3 an address or DSN parameter contains a line break\n"
            "pending connect 0  \n");
}

TEST(ClientSession, TimeoutsArePostfixParameters) {
  auto cfg = config::Config::from_text("/nonexistent", "", "main.cf");
  ASSERT_TRUE(cfg.ok());
  const std::pair<Timeout, long long> expected[] = {
      {Timeout::kConnect, 30},   {Timeout::kHelo, 300}, {Timeout::kStartTls, 300}, {Timeout::kAuth, 300},
      {Timeout::kMail, 300},     {Timeout::kRcpt, 300}, {Timeout::kDataInit, 120}, {Timeout::kDataXfer, 180},
      {Timeout::kDataDone, 600}, {Timeout::kQuit, 300}};
  for (auto [t, seconds] : expected)
    EXPECT_EQ(cfg->get_int(timeout_parameter(t)), seconds) << timeout_parameter(t);
}

}  // namespace
}  // namespace postern::smtp::client

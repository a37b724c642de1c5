#include "smtp/server/session.hpp"

#include <gtest/gtest.h>

#include "auth/sasl/scram.hpp"

namespace postern::smtp::server {
namespace {

// A whole session driven over no socket: cmd("VRFY x", "252 ...") style.
class Dialogue {
 public:
  explicit Dialogue(Settings s = defaults())
      : session_(std::move(s), Client{"192.0.2.1"}, [](std::string_view local, std::string_view domain) {
          delivery::Resolution r;
          if (domain != "example.test") {
            r.status = delivery::RcptStatus::kNotOurDomain;
          } else if (local == "alice" || local == "bob") {
            r.status = delivery::RcptStatus::kLocal;
          } else {
            r.status = delivery::RcptStatus::kUnknownUser;
          }
          return r;
        }) {}

  static Settings defaults() {
    Settings s;
    s.hostname = "mx.example.test";
    s.banner = "mx.example.test ESMTP Postern";
    s.mail_name = "Postern";
    s.myorigin = "example.test";
    s.message_size_limit = 100;
    s.recipient_limit = 2;
    s.hard_error_limit = 5;
    s.soft_error_limit = 3;
    return s;
  }

  // Sends one command; returns the first line of the last reply and the next step.
  Step cmd(std::string_view line, std::string_view expect, bool pipelined = false) {
    Step s = session_.command(line, pipelined);
    EXPECT_FALSE(s.replies.empty()) << line;
    if (!s.replies.empty()) {
      std::string first = s.replies.back().render();
      EXPECT_EQ(first.substr(0, first.find("\r\n")), expect) << line;
    }
    return s;
  }

  Session session_;
};

TEST(Session, GreetingAndEhlo) {
  Dialogue d;
  EXPECT_EQ(d.session_.greeting().render(), "220 mx.example.test ESMTP Postern\r\n");
  Step s = d.session_.command("EHLO client.example", false);
  std::string r = s.replies.front().render();
  EXPECT_EQ(r,
            "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-VRFY\r\n250-ENHANCEDSTATUSCODES\r\n"
            "250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n");
  d.cmd("HELO client.example", "250 mx.example.test");
}

TEST(Session, Transaction) {
  Dialogue d;
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd("MAIL FROM:<>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<carol@example.test>",
        "550 5.1.1 <carol@example.test>: Recipient address rejected: User unknown");
  d.cmd("RCPT TO:<x@elsewhere.example>", "554 5.7.1 <x@elsewhere.example>: Relay access denied");
  d.cmd("RCPT TO:<bob>", "250 2.1.5 Ok");  // $myorigin is appended
  d.cmd("RCPT TO:<alice@example.test>", "452 4.5.3 Error: too many recipients");
  Step s = d.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>");
  EXPECT_EQ(s.next, Next::kData);
  std::string in = "Subject: t\r\n\r\nhi\r\n.\r\n";
  d.session_.data_reader().feed(in, d.session_.content());
  Step done = d.session_.data_done();
  EXPECT_EQ(done.next, Next::kDeliver);
  EXPECT_EQ(d.session_.envelope().sender, "");
  ASSERT_EQ(d.session_.envelope().recipients.size(), 2u);
  EXPECT_EQ(d.session_.envelope().recipients[1], "bob@example.test");
  EXPECT_EQ(d.session_.content(), "Subject: t\n\nhi\n");
  std::string hdr = d.session_.received_header();
  EXPECT_EQ(
      hdr.rfind("Received: from c (unknown [192.0.2.1])\n\tby mx.example.test (Postern) with ESMTP id ", 0),
      0u);
  std::string id = d.session_.envelope().queue_id;
  EXPECT_EQ(id.size(), 14u);
  Step ok = d.session_.delivered(store::StoreError{});
  EXPECT_EQ(ok.replies.front().render(), "250 2.0.0 Ok: queued as " + id + "\r\n");
  EXPECT_FALSE(d.session_.in_transaction());
}

TEST(Session, StorageErrorsMapToReplies) {
  EXPECT_EQ(delivery_reply({store::ErrorKind::kNoSpace, ""}, "X").render(),
            "452 4.3.1 Insufficient system storage\r\n");
  EXPECT_EQ(delivery_reply({store::ErrorKind::kTemporary, ""}, "X").render(),
            "451 4.3.0 Error: mailbox write error, try again later\r\n");
  EXPECT_EQ(delivery_reply({store::ErrorKind::kQuotaExceeded, ""}, "X").render(),
            "552 5.2.2 Mailbox full\r\n");
}

TEST(Session, SizeLimits) {
  Dialogue d;
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd("MAIL FROM:<a@b.example> SIZE=101", "552 5.3.4 Message size exceeds fixed limit");
  d.cmd("MAIL FROM:<a@b.example> SIZE=100", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  d.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>");
  std::string in = std::string(200, 'x') + "\r\n.\r\n";
  d.session_.data_reader().feed(in, d.session_.content());
  Step s = d.session_.data_done();
  EXPECT_EQ(s.replies.front().render(), "552 5.3.4 Message size exceeds fixed limit\r\n");
}

TEST(Session, MailLoopRefused) {
  Settings st = Dialogue::defaults();
  st.message_size_limit = 0;
  st.hopcount_limit = 3;
  Dialogue d(st);
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd("MAIL FROM:<a@b.example>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  d.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>");
  std::string in = "Received: a\r\nReceived: b\r\nReceived: c\r\n\r\nx\r\n.\r\n";
  d.session_.data_reader().feed(in, d.session_.content());
  EXPECT_EQ(d.session_.data_done().replies.front().render(), "554 5.4.6 Too many hops\r\n");
}

TEST(Session, OrderErrors) {
  Dialogue d;
  d.cmd("RCPT TO:<alice@example.test>", "503 5.5.1 Error: need MAIL command");
  d.cmd("DATA", "503 5.5.1 Error: need MAIL command");
  d.cmd("MAIL FROM:<a@b.example>", "250 2.1.0 Ok");
  d.cmd("MAIL FROM:<a@b.example>", "503 5.5.1 Error: nested MAIL command");
  d.cmd("DATA", "503 5.5.1 Error: need RCPT command");
}

TEST(Session, HardErrorLimitCloses) {
  Dialogue d;
  for (int i = 0; i < 4; ++i) {
    Step e = d.cmd("BOGUS", "500 5.5.2 Error: command not recognized");
    EXPECT_EQ(e.delay, i >= 2) << "the soft limit (3) delays from the third error on";
  }
  Step s = d.session_.command("BOGUS", false);
  ASSERT_EQ(s.replies.size(), 2u);
  EXPECT_EQ(s.replies[1].render(), "421 4.7.0 mx.example.test Error: too many errors\r\n");
  EXPECT_EQ(s.next, Next::kClose);
}

TEST(Session, PipeliningDiscipline) {
  Dialogue d;
  // Before EHLO nothing may be pipelined; after EHLO, DATA must end a group.
  Step s = d.cmd("HELO c", "554 5.5.0 Error: SMTP protocol synchronization", true);
  EXPECT_EQ(s.next, Next::kClose);
  Dialogue e;
  e.cmd("EHLO c", "250-mx.example.test");
  e.cmd("MAIL FROM:<a@b.example>", "250 2.1.0 Ok", true);
  e.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok", true);
  Step data = e.cmd("DATA", "554 5.5.0 Error: SMTP protocol synchronization", true);
  EXPECT_EQ(data.next, Next::kClose);
}

TEST(Session, Bdat) {
  Dialogue d;
  d.cmd("EHLO c", "250-mx.example.test");
  Step refused = d.session_.command("BDAT 5", false);
  EXPECT_TRUE(refused.bdat_discard);
  EXPECT_EQ(refused.bdat_size, 5u);
  d.cmd("MAIL FROM:<a@b.example>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  Step s = d.session_.command("BDAT 4", false);
  EXPECT_EQ(s.next, Next::kBdat);
  EXPECT_FALSE(s.bdat_discard);
  d.session_.bdat_feed("a\r\nb");
  EXPECT_EQ(d.session_.bdat_done().replies.front().render(), "250 2.0.0 Ok: 4 bytes\r\n");
  d.cmd("DATA", "503 5.5.1 Error: DATA not allowed after BDAT");
  EXPECT_EQ(d.session_.command("BDAT 2 LAST", false).next, Next::kBdat);
  d.session_.bdat_feed("\r\n");
  EXPECT_EQ(d.session_.bdat_done().next, Next::kDeliver);
  EXPECT_EQ(d.session_.content(), "a\nb\n");
}

TEST(Session, Utf8RecipientNeedsSmtputf8) {
  Dialogue d;
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd("MAIL FROM:<a@b.example>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<jörg@example.test>", "553 5.6.7 Non-ASCII address requires SMTPUTF8");
}

TEST(Session, CommandSummaryLikePostfix) {
  Dialogue d;
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd("MAIL FROM:<a@b.example>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<zed@example.test>",
        "550 5.1.1 <zed@example.test>: Recipient address rejected: User unknown");
  d.cmd("QUIT", "221 2.0.0 Bye");
  EXPECT_EQ(d.session_.command_summary(), "ehlo=1 mail=1 rcpt=1/2 quit=1 commands=4/5");
}

}  // namespace
}  // namespace postern::smtp::server

namespace postern::smtp::server {
namespace {

class AliceOnly : public auth::sasl::Credentials {
 public:
  std::optional<std::string> verify(std::string_view user, std::string_view password) override {
    if (user == "alice@example.test" && password == "pw") return std::string(user);
    return std::nullopt;
  }
  auth::sasl::ScramKeys scram_sha256(std::string_view user) override {
    return auth::sasl::fake_scram_keys("s", user);
  }
  std::optional<Cleartext> cleartext(std::string_view) override { return std::nullopt; }
};

Settings with_auth() {
  Settings s = Dialogue::defaults();
  s.sasl_enabled = true;
  s.broken_sasl_auth_clients = true;
  s.sasl_authenticated_header = true;
  s.hard_error_limit = 20;
  s.soft_error_limit = 20;
  return s;
}

// RFC 4954's replies: 334, 235 2.7.0, 535 5.7.8, 538 5.7.11, 534 5.7.9, 501 5.5.2 / 5.7.0, 503 5.5.1.
TEST(Session, Auth) {
  AliceOnly creds;
  Dialogue d(with_auth());
  d.cmd("AUTH PLAIN", "503 5.5.1 Error: authentication not enabled");  // no credentials yet
  d.session_.set_credentials(creds);
  d.cmd("AUTH PLAIN", "503 5.5.1 Error: send EHLO first");
  Step ehlo = d.session_.command("EHLO c", false);
  std::string r = ehlo.replies.front().render();
  EXPECT_NE(r.find("250-AUTH PLAIN LOGIN SCRAM-SHA-256\r\n250-AUTH=PLAIN LOGIN SCRAM-SHA-256\r\n"),
            std::string::npos)
      << r;
  d.cmd("AUTH X-FOO", "504 5.5.4 Unrecognized authentication type");
  d.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==",
        "535 5.7.8 Error: authentication failed: authentication failure");
  d.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw=", "501 5.5.2 Cannot decode response");
  Step s = d.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6");
  EXPECT_EQ(s.next, Next::kAuth);
  s = d.session_.auth_line("*");
  EXPECT_EQ(s.replies.front().render(), "501 5.7.0 Authentication aborted\r\n");
  d.cmd("MAIL FROM:<>", "250 2.1.0 Ok");
  d.cmd("AUTH PLAIN", "503 5.5.1 Error: MAIL transaction in progress");
  d.cmd("RSET", "250 2.0.0 Ok");
  s = d.cmd("AUTH PLAIN", "334 ");
  s = d.session_.auth_line("AGFsaWNlQGV4YW1wbGUudGVzdABwdw==");  // \0alice@example.test\0pw
  EXPECT_EQ(s.replies.front().render(), "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(d.session_.sasl_user(), "alice@example.test");
  d.cmd("AUTH PLAIN", "503 5.5.1 Error: already authenticated");
  d.cmd("MAIL FROM:<alice@example.test>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<bob@example.test>", "250 2.1.5 Ok");
  d.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>");
  std::string in = "Subject: t\r\n\r\nhi\r\n.\r\n";
  d.session_.data_reader().feed(in, d.session_.content());
  d.session_.data_done();
  std::string received = d.session_.received_header();
  EXPECT_NE(
      received.find("(Authenticated sender: alice@example.test)\n\tby mx.example.test (Postern) with ESMTPA"),
      std::string::npos)
      << received;
  EXPECT_NE(d.session_.command_summary().find("auth=1/9"), std::string::npos) << d.session_.command_summary();
}

TEST(Session, AuthPlaintextPolicy) {
  AliceOnly creds;
  Settings st = with_auth();
  st.sasl.plaintext_allowed = false;  // smtpd_tls_auth_only = yes, no TLS
  Dialogue d(st);
  d.session_.set_credentials(creds);
  Step ehlo = d.session_.command("EHLO c", false);
  EXPECT_NE(ehlo.replies.front().render().find("250-AUTH SCRAM-SHA-256\r\n"), std::string::npos);
  d.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==",
        "538 5.7.11 Encryption required for requested authentication mechanism");
  tls::Info tls;
  tls.active = true;
  d.session_.set_tls(tls);
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==", "235 2.7.0 Authentication successful");
  // A new TLS start (which the driver never does twice, but the session must not care) forgets the login.
  d.session_.set_tls(tls);
  EXPECT_EQ(d.session_.sasl_user(), "");

  Settings weak = with_auth();
  weak.sasl_noplaintext = true;
  Dialogue w(weak);
  w.session_.set_credentials(creds);
  w.cmd("EHLO c", "250-mx.example.test");
  w.cmd("AUTH LOGIN", "534 5.7.9 Authentication mechanism is too weak");
}

}  // namespace
}  // namespace postern::smtp::server

#include "smtp/server/session.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "auth/sasl/scram.hpp"
#include "base/strings.hpp"

namespace postern::smtp::server {
namespace {

// A policy as main.cf `text` makes it, on a host with the address 192.0.2.25/24 that it listens on.
std::shared_ptr<const Policy> policy_from(std::string_view text) {
  auto cfg = config::Config::from_text("/nonexistent", text, "main.cf");
  EXPECT_TRUE(cfg.ok()) << cfg.error().message;
  HostFacts host;
  host.interfaces = {Network{*parse_ip("192.0.2.25"), 120}};
  host.listening = {*parse_ip("192.0.2.25")};
  auto p = Policy::load(*cfg, "smtp", host);
  EXPECT_TRUE(p.ok()) << p.error().message;
  return std::make_shared<const Policy>(std::move(*p));
}

// A whole session driven over no socket: cmd("VRFY x", "252 ...") style. example.test and mx.example.test are
// ours, with the users alice and bob and the alias team (alice, bob).
class Dialogue {
 public:
  Dialogue() : Dialogue(defaults("")) {}
  explicit Dialogue(Settings s, std::string client = "192.0.2.1")
      : session_(std::move(s), Client{std::move(client)},
                 [](std::string_view local, std::string_view domain) {
                   delivery::Resolution r;
                   std::string d = to_lower(domain);
                   if (d != "example.test" && d != "mx.example.test") {
                     r.status = delivery::RcptStatus::kNotOurDomain;
                   } else if (local == "alice" || local == "bob" || local == "team") {
                     r.status = delivery::RcptStatus::kLocal;
                   } else {
                     r.status = delivery::RcptStatus::kUnknownUser;
                   }
                   return r;
                 }) {
    session_.set_sender_owner([](std::string_view login, std::string_view address) {
      return login == "alice@example.test" && address == "team@example.test";
    });
  }

  static Settings defaults(std::string_view main_cf = "") {
    Settings s;
    s.hostname = "mx.example.test";
    s.banner = "mx.example.test ESMTP Postern";
    s.mail_name = "Postern";
    s.myorigin = "example.test";
    s.message_size_limit = 100;
    s.recipient_limit = 2;
    s.hard_error_limit = 5;
    s.soft_error_limit = 3;
    s.policy = policy_from(main_cf);
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
            "250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n");
  d.cmd("HELO client.example", "250 mx.example.test");
}

TEST(Session, Transaction) {
  Dialogue d;
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd("MAIL FROM:<>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<carol@example.test>",
        "550 5.1.1 <carol@example.test>: Recipient address rejected: User unknown");
  // Postfix's default smtpd_relay_restrictions ends in defer_unauth_destination.
  d.cmd("RCPT TO:<x@elsewhere.example>", "454 4.7.1 <x@elsewhere.example>: Relay access denied");
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

// ---------------------------------------------------------------------------------------------- relay policy

constexpr std::string_view kRejectRelay =
    "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n";

// Opens a transaction: EHLO, MAIL FROM:<from>.
void begin(Dialogue& d, std::string_view from = "a@b.example") {
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd(fmt::format("MAIL FROM:<{}>", from), "250 2.1.0 Ok");
}

TEST(Relay, TricksFromOutsideAreRefused) {
  struct Trick {
    std::string_view rcpt;
    std::string_view reply;
  };
  const Trick tricks[] = {
      {"<victim@other.example>", "554 5.7.1 <victim@other.example>: Relay access denied"},
      {"<user%other.example@example.test>",
       "554 5.7.1 <user%other.example@example.test>: Relay access denied"},
      {"<@example.test:user@other.example>", "554 5.7.1 <user@other.example>: Relay access denied"},
      {"<@example.test,@mx.example.test:user@other.example>",
       "554 5.7.1 <user@other.example>: Relay access denied"},
      {"<\"user@other.example\"@example.test>",
       "554 5.7.1 <\"user@other.example\"@example.test>: Relay access denied"},
      {"<other.example!user@example.test>",
       "554 5.7.1 <other.example!user@example.test>: Relay access denied"},
      {"<\"other.example!alice\"@example.test>",
       "554 5.7.1 <other.example!alice@example.test>: Relay access denied"},
      {"<user@[127.0.0.2]>", "554 5.7.1 <user@[127.0.0.2]>: Relay access denied"},
      {"<user@[IPv6:::1]>", "554 5.7.1 <user@[IPv6:::1]>: Relay access denied"},
      {"<VICTIM@OTHER.EXAMPLE>", "554 5.7.1 <VICTIM@OTHER.EXAMPLE>: Relay access denied"},
      {" <victim@other.example>", "554 5.7.1 <victim@other.example>: Relay access denied"},
      {"victim@other.example", "554 5.7.1 <victim@other.example>: Relay access denied"},
      // Not RFC 5321 paths: refused before any policy.
      {"<user@other.example@example.test>", "501 5.1.3 Bad recipient address syntax"},
      {"<user@other.example.>", "501 5.1.3 Bad recipient address syntax"},
      {"<user@example.test.>", "501 5.1.3 Bad recipient address syntax"},
  };
  for (const auto& t : tricks) {
    Settings st = Dialogue::defaults(kRejectRelay);
    st.hard_error_limit = 0;
    Dialogue d(st);
    begin(d);
    d.cmd(fmt::format("RCPT TO:{}", t.rcpt), t.reply);
    EXPECT_TRUE(d.session_.envelope().outbound.empty()) << t.rcpt;
    EXPECT_TRUE(d.session_.envelope().recipients.empty()) << t.rcpt;
  }
}

TEST(Relay, NullSenderGetsNoRelayRights) {
  Dialogue d(Dialogue::defaults(kRejectRelay));
  begin(d, "");
  d.cmd("RCPT TO:<victim@other.example>", "554 5.7.1 <victim@other.example>: Relay access denied");
}

TEST(Relay, OurDomainsStillWorkAndCaseDoesNotMatter) {
  Dialogue d(Dialogue::defaults(kRejectRelay));
  begin(d);
  d.cmd("RCPT TO:<alice@EXAMPLE.Test>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<bob@[192.0.2.25]>", "250 2.1.5 Ok");  // an address literal of ours: local, as Postfix
  EXPECT_EQ(d.session_.envelope().recipients,
            (std::vector<std::string>{"alice@EXAMPLE.Test", "bob@mx.example.test"}));
  EXPECT_TRUE(d.session_.envelope().outbound.empty());
}

TEST(Relay, MynetworksMayRelayButNeverThroughRoutingTricks) {
  Dialogue d(Dialogue::defaults(), "127.0.0.1");
  begin(d);
  d.cmd("RCPT TO:<Friend@Other.Example>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<@example.test:carol@third.example>", "250 2.1.5 Ok");  // the route is dropped
  EXPECT_EQ(d.session_.envelope().outbound,
            (std::vector<std::string>{"Friend@Other.Example", "carol@third.example"}));
  Dialogue e(Dialogue::defaults(), "127.0.0.1");
  begin(e);
  e.cmd("RCPT TO:<user%other.example@example.test>",
        "554 5.7.1 <user%other.example@example.test>: Relay access denied");
  e.cmd("RCPT TO:<other.example!user@example.test>",
        "554 5.7.1 <other.example!user@example.test>: Relay access denied");
  e.cmd("RCPT TO:<\"user@other.example\"@example.test>",
        "554 5.7.1 <\"user@other.example\"@example.test>: Relay access denied");
  EXPECT_TRUE(e.session_.envelope().outbound.empty());
  EXPECT_TRUE(e.session_.envelope().recipients.empty());
}

TEST(Relay, LocalAndRemoteRecipientsInOneMessage) {
  Dialogue d(Dialogue::defaults(), "::1");
  begin(d);
  d.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<friend@other.example>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<bob@example.test>", "452 4.5.3 Error: too many recipients");  // limit 2 counts both kinds
  d.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>");
  std::string in = "Subject: t\r\n\r\nhi\r\n.\r\n";
  d.session_.data_reader().feed(in, d.session_.content());
  EXPECT_EQ(d.session_.data_done().next, Next::kDeliver);
  EXPECT_EQ(d.session_.envelope().recipients, std::vector<std::string>{"alice@example.test"});
  EXPECT_EQ(d.session_.envelope().outbound, std::vector<std::string>{"friend@other.example"});
}

TEST(Session, DsnParametersAreKeptPerRecipient) {
  Dialogue d(Dialogue::defaults(), "::1");
  d.cmd("EHLO c", "250-mx.example.test");
  d.cmd("MAIL FROM:<alice@example.test> RET=HDRS ENVID=abc+2B", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<alice> NOTIFY=SUCCESS ORCPT=rfc822;team+40example.test", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<friend@other.example> NOTIFY=NEVER,DELAY", "501 5.5.4 Bad NOTIFY parameter syntax");
  d.cmd("RCPT TO:<friend@other.example> NOTIFY=FAILURE,DELAY", "250 2.1.5 Ok");
  const auto& env = d.session_.envelope();
  EXPECT_EQ(env.ret, proto::Ret::kHdrs);
  EXPECT_EQ(env.envid, "abc+");
  ASSERT_EQ(env.dsn.size(), 2u);
  const auto& alice = env.dsn.at("alice@example.test");
  EXPECT_EQ(alice.notify, proto::kNotifySuccess);
  EXPECT_EQ(alice.orcpt, (proto::OriginalRecipient{"rfc822", "team@example.test"}));
  EXPECT_EQ(env.dsn.at("friend@other.example").notify, proto::kNotifyFailure | proto::kNotifyDelay);
  EXPECT_FALSE(env.dsn.at("friend@other.example").orcpt);
  // A new transaction forgets them.
  d.cmd("RSET", "250 2.0.0 Ok");
  d.cmd("MAIL FROM:<alice@example.test>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<friend@other.example>", "250 2.1.5 Ok");
  EXPECT_EQ(d.session_.envelope().ret, proto::Ret::kUnspecified);
  EXPECT_TRUE(d.session_.envelope().envid.empty() && d.session_.envelope().dsn.empty());
}

TEST(Session, DsnParametersNeedEhlo) {
  Dialogue d(Dialogue::defaults(), "::1");
  d.cmd("HELO c", "250 mx.example.test");
  d.cmd("MAIL FROM:<alice@example.test> RET=FULL",
        "555 5.5.4 Unsupported option: ESMTP parameters need EHLO");
  d.cmd("MAIL FROM:<alice@example.test> ENVID=x", "555 5.5.4 Unsupported option: ESMTP parameters need EHLO");
  d.cmd("MAIL FROM:<alice@example.test>", "250 2.1.0 Ok");
  d.cmd("RCPT TO:<friend@other.example> NOTIFY=NEVER",
        "555 5.5.4 Unsupported option: ESMTP parameters need EHLO");
  d.cmd("RCPT TO:<friend@other.example> ORCPT=rfc822;friend@other.example",
        "555 5.5.4 Unsupported option: ESMTP parameters need EHLO");
  d.cmd("RCPT TO:<friend@other.example>", "250 2.1.5 Ok");
}

TEST(Relay, AuthenticatedUsersMayRelay) {
  Dialogue d(Dialogue::defaults(kRejectRelay));
  begin(d);
  d.cmd("RCPT TO:<friend@other.example>", "554 5.7.1 <friend@other.example>: Relay access denied");
  d.session_.set_sasl_user("alice@example.test");
  EXPECT_EQ(d.session_.sasl_user(), "alice@example.test");
  d.cmd("RCPT TO:<friend@other.example>", "250 2.1.5 Ok");
  // Still no routing through our own domain.
  d.cmd("RCPT TO:<user%other.example@example.test>",
        "554 5.7.1 <user%other.example@example.test>: Relay access denied");
}

TEST(Relay, DeferUnauthDestinationAnswers454) {
  Dialogue d(Dialogue::defaults("smtpd_relay_restrictions = defer_unauth_destination\n"));
  begin(d);
  d.cmd("RCPT TO:<x@other.example>", "454 4.7.1 <x@other.example>: Relay access denied");
  d.cmd("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
}

TEST(Relay, RelayDomainsAreAcceptedFromAnyone) {
  Dialogue d(
      Dialogue::defaults(std::string(kRejectRelay) + "relay_domains = backup.example, .sub.example\n"));
  begin(d);
  d.cmd("RCPT TO:<y%z@backup.example>", "554 5.7.1 <y%z@backup.example>: Relay access denied");
  d.cmd("RCPT TO:<y@sub.example>", "554 5.7.1 <y@sub.example>: Relay access denied");
  d.cmd("RCPT TO:<x@Backup.Example>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<y@a.sub.example>", "250 2.1.5 Ok");
  EXPECT_EQ(d.session_.envelope().outbound,
            (std::vector<std::string>{"x@Backup.Example", "y@a.sub.example"}));
}

TEST(Relay, SenderLoginMismatch) {
  char path[] = "/tmp/postern-login-maps-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << "# who may send as whom\ncarol@example.test  alice@example.test, bob@example.test\n"
                         "@shared.example bob@example.test\n";
  std::string cf = fmt::format(
      "smtpd_recipient_restrictions = reject_sender_login_mismatch, permit_sasl_authenticated, "
      "permit_mynetworks, reject_unauth_destination\nsmtpd_sender_login_maps = texthash:{}\n",
      path);
  auto run = [&](std::string_view login, std::string_view from, std::string_view expect) {
    Dialogue d(Dialogue::defaults(cf));
    if (!login.empty()) d.session_.set_sasl_user(std::string(login));
    begin(d, from);
    d.cmd("RCPT TO:<bob@example.test>", expect);
  };
  run("alice@example.test", "alice@example.test", "250 2.1.5 Ok");
  run("alice@example.test", "Alice@Example.Test", "250 2.1.5 Ok");
  run("alice@example.test", "team@example.test", "250 2.1.5 Ok");   // an alias that reaches her
  run("alice@example.test", "carol@example.test", "250 2.1.5 Ok");  // smtpd_sender_login_maps
  run("alice@example.test", "", "250 2.1.5 Ok");                    // the null sender
  run("alice@example.test", "bob@example.test",
      "553 5.7.1 <bob@example.test>: Sender address rejected: not owned by user alice@example.test");
  run("alice@example.test", "x@shared.example",
      "553 5.7.1 <x@shared.example>: Sender address rejected: not owned by user alice@example.test");
  run("bob@example.test", "x@shared.example", "250 2.1.5 Ok");  // @domain entry
  // Not logged in: refused only for addresses that the maps give an owner.
  run("", "carol@example.test", "553 5.7.1 <carol@example.test>: Sender address rejected: not logged in");
  run("", "someone@elsewhere.example", "250 2.1.5 Ok");
  ::unlink(path);
}

TEST(Relay, FqdnAndDomainChecks) {
  Dialogue d(
      Dialogue::defaults("smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_non_fqdn_sender, "
                         "reject_unknown_recipient_domain, permit\nsmtpd_relay_restrictions = permit\n"));
  begin(d);
  d.cmd("RCPT TO:<bob>",
        "504 5.5.2 <bob@example.test>: Recipient address rejected: need fully-qualified address");
  d.cmd("RCPT TO:<bob@localhost>",
        "504 5.5.2 <bob@localhost>: Recipient address rejected: need fully-qualified address");
  d.cmd("RCPT TO:<bob@[192.0.2.99]>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<x@nowhere.invalid>",
        "450 4.1.2 <x@nowhere.invalid>: Recipient address rejected: Domain not found");
  Dialogue e(Dialogue::defaults(
      "smtpd_recipient_restrictions = reject_non_fqdn_sender, reject_unauth_destination\n"));
  begin(e, "root@localhost");
  e.cmd("RCPT TO:<bob@example.test>",
        "504 5.5.2 <root@localhost>: Sender address rejected: need fully-qualified address");
  Dialogue f(Dialogue::defaults("smtpd_recipient_restrictions = reject_non_fqdn_sender, permit\n"));
  begin(f, "");
  f.cmd("RCPT TO:<bob@example.test>", "250 2.1.5 Ok");
}

TEST(Relay, UnlistedRecipientAndPlainReject) {
  Dialogue d(
      Dialogue::defaults("smtpd_relay_restrictions = reject_unlisted_recipient, permit\n"
                         "smtpd_recipient_restrictions = reject_unauth_pipelining, reject\n"));
  begin(d);
  d.cmd("RCPT TO:<zed@example.test>",
        "550 5.1.1 <zed@example.test>: Recipient address rejected: User unknown");
  d.cmd("RCPT TO:<bob@example.test>",
        "554 5.7.1 <bob@example.test>: Recipient address rejected: Access denied");
}

TEST(Relay, PermitAuthDestination) {
  Dialogue d(
      Dialogue::defaults("smtpd_relay_restrictions =\n"
                         "smtpd_recipient_restrictions = permit_auth_destination, reject\n"));
  begin(d);
  d.cmd("RCPT TO:<bob@example.test>", "250 2.1.5 Ok");
  d.cmd("RCPT TO:<x@other.example>",
        "554 5.7.1 <x@other.example>: Recipient address rejected: Access denied");
}

TEST(Relay, UnknownRecipientsCountAsErrors) {
  // Enumerating users by RCPT: each miss is an error, the soft limit slows, the hard limit disconnects.
  Dialogue d;
  begin(d);
  for (int i = 0; i < 4; ++i) {
    Step s = d.cmd(fmt::format("RCPT TO:<u{}@example.test>", i),
                   fmt::format("550 5.1.1 <u{}@example.test>: Recipient address rejected: User unknown", i));
    EXPECT_EQ(s.delay, i >= 2);
  }
  Step s = d.session_.command("RCPT TO:<u9@example.test>", false);
  EXPECT_EQ(s.next, Next::kClose);
}

TEST(Relay, JunkCommandLimit) {
  Settings st = Dialogue::defaults();
  st.junk_command_limit = 2;
  Dialogue d(st);
  d.cmd("EHLO c", "250-mx.example.test");
  EXPECT_FALSE(d.cmd("NOOP", "250 2.0.0 Ok").delay);
  EXPECT_FALSE(
      d.cmd("VRFY alice", "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery").delay);
  EXPECT_FALSE(d.cmd("RSET", "250 2.0.0 Ok").delay);  // error 1
  EXPECT_FALSE(d.cmd("NOOP", "250 2.0.0 Ok").delay);  // error 2
  EXPECT_TRUE(d.cmd("NOOP", "250 2.0.0 Ok").delay);   // error 3: the soft limit
  d.cmd("NOOP", "250 2.0.0 Ok");
  EXPECT_EQ(d.session_.command("NOOP", false).next, Next::kClose);  // error 5: the hard limit
}

// ------------------------------------------------------------------------------------ policy configuration

Result<Policy> load(std::string_view text) {
  auto cfg = config::Config::from_text("/nonexistent", text, "main.cf");
  EXPECT_TRUE(cfg.ok()) << cfg.error().message;
  HostFacts host;
  host.interfaces = {Network{*parse_ip("192.0.2.25"), 120}, Network{*parse_ip("2001:db8::7"), 64}};
  return Policy::load(*cfg, "smtp", host);
}

TEST(PolicyConfig, ErrorsNameTheKey) {
  auto e =
      load("myhostname = mx.example.test\nsmtpd_recipient_restrictions = permit_mynetworks, permit_foo\n");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message,
            "main.cf, line 2: smtpd_recipient_restrictions: unknown restriction \"permit_foo\"");
  auto over = load("submission/smtpd_relay_restrictions = reject_bogus\n");
  EXPECT_TRUE(over.ok());  // the override belongs to another service...
  auto cfg = config::Config::from_text("/nonexistent", "submission/smtpd_relay_restrictions = reject_bogus\n",
                                       "main.cf");
  auto sub = Policy::load(*cfg, "submission", {});
  ASSERT_FALSE(sub.ok());  // ...and is checked for it
  EXPECT_NE(sub.error().message.find("line 1: submission/smtpd_relay_restrictions"), std::string::npos);
  auto net = load("mynetworks = 10.0.0.1/8\n");
  ASSERT_FALSE(net.ok());
  EXPECT_NE(net.error().message.find("line 1: mynetworks: non-null host address bits"), std::string::npos);
  EXPECT_FALSE(load("mynetworks = mail.example.org\n").ok());
  EXPECT_FALSE(load("mynetworks = /nonexistent/networks\n").ok());
  EXPECT_FALSE(load("mynetworks_style = galaxy\n").ok());
  EXPECT_FALSE(load("relay_domains = hash:/etc/postfix/relay\n").ok());
  EXPECT_FALSE(load("smtpd_sender_login_maps = ldap:/etc/postfix/ldap.cf\n").ok());
  EXPECT_FALSE(load("smtpd_sender_login_maps = hash:/nonexistent/senders\n").ok());
}

TEST(PolicyConfig, AnOpenRelayIsRefusedAsPostfixRefusesIt) {
  auto open = load("smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks\n");
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("smtpd_recipient_restrictions"), std::string::npos);
  EXPECT_TRUE(
      load("smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = reject_unauth_destination\n").ok());
  EXPECT_TRUE(load("smtpd_recipient_restrictions =\n").ok());  // the relay list still protects
}

TEST(PolicyConfig, MynetworksAndStyles) {
  auto def = load("");
  ASSERT_TRUE(def.ok());
  EXPECT_TRUE(def->trusted("127.0.0.1"));
  EXPECT_TRUE(def->trusted("::1"));
  EXPECT_FALSE(def->trusted("192.0.2.25"));  // the default list is loopback only: style applies when set
  auto host = load("mynetworks_style = host\n");
  EXPECT_TRUE(host->trusted("192.0.2.25"));
  EXPECT_FALSE(host->trusted("192.0.2.26"));
  EXPECT_TRUE(host->trusted("2001:db8::7"));
  auto subnet = load("mynetworks_style = subnet\n");
  EXPECT_TRUE(subnet->trusted("192.0.2.200"));
  EXPECT_TRUE(subnet->trusted("2001:db8::1:2"));
  EXPECT_FALSE(subnet->trusted("192.0.3.1"));
  auto klass = load("mynetworks_style = class\n");
  EXPECT_TRUE(klass->trusted("192.0.2.9"));  // 192/8 and up: class C
  EXPECT_FALSE(klass->trusted("192.0.3.9"));
  auto both = load("mynetworks_style = subnet\nmynetworks = 198.51.100.0/24\n");
  EXPECT_TRUE(both->trusted("198.51.100.1"));  // an explicit mynetworks wins
  EXPECT_FALSE(both->trusted("192.0.2.200"));
  char path[] = "/tmp/postern-mynetworks-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << "# office\n203.0.113.0/24 # LAN\n[2001:db8:5::]/48\n";
  auto file = load(fmt::format("mynetworks = 127.0.0.0/8, {}\n", path));
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_TRUE(file->trusted("203.0.113.77"));
  EXPECT_TRUE(file->trusted("2001:db8:5::1"));
  EXPECT_TRUE(file->trusted("127.0.0.2"));
  EXPECT_FALSE(file->trusted("2001:db8:6::1"));
  ::unlink(path);
}

TEST(PolicyConfig, AddressFacts) {
  EXPECT_TRUE(has_routing("a%b"));
  EXPECT_TRUE(has_routing("b!a"));
  EXPECT_TRUE(has_routing("a@b"));
  EXPECT_FALSE(has_routing("a.b+c"));
  EXPECT_TRUE(is_fqdn("a.example"));
  EXPECT_TRUE(is_fqdn("[192.0.2.1]"));
  EXPECT_FALSE(is_fqdn("localhost"));
  EXPECT_FALSE(is_fqdn(""));
  EXPECT_FALSE(domain_may_exist("x.INVALID"));
  EXPECT_FALSE(domain_may_exist("intranet"));
  EXPECT_TRUE(domain_may_exist("other.example"));
}

}  // namespace
}  // namespace postern::smtp::server

namespace postern::smtp::server {
namespace {

class AliceOnly : public auth::sasl::Credentials {
 public:
  auth::sasl::Verdict verify(std::string_view user, std::string_view password) override {
    if (user == "down@example.test") return auth::sasl::Verdict::unavailable();
    if (user == "alice@example.test" && password == "pw")
      return auth::sasl::Verdict::accepted(std::string(user));
    return {};
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

// RFC 4954's replies: 334, 235 2.7.0, 535 5.7.8, 454 4.7.0, 538 5.7.11, 534 5.7.9, 501 5.5.2 / 5.7.0,
// 503 5.5.1.
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
  EXPECT_EQ(d.session_.auth_failures(), 1);
  // The password database cannot answer: a temporary failure, not counted as a failed login.
  d.cmd("AUTH PLAIN AGRvd25AZXhhbXBsZS50ZXN0AHB3", "454 4.7.0 Temporary authentication failure");
  EXPECT_EQ(d.session_.auth_failures(), 1);
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
  EXPECT_NE(d.session_.command_summary().find("auth=1/10"), std::string::npos)
      << d.session_.command_summary();
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

// reject_unknown_recipient_domain / reject_unknown_sender_domain: the session asks for a lookup
// (Next::kLookup), which runs here as the driver runs it, on a StaticResolver.
class DnsDialogue : public Dialogue {
 public:
  explicit DnsDialogue(std::string_view restrictions) : Dialogue(settings(restrictions)) {
    dns_.add_mx("mx.example", 10, "mail.mx.example");
    dns_.add_address("a-only.example", "192.0.2.10");
    dns_.add_mx("null.example", 0, "");
    dns_.set_status("servfail.example", dns::Status::kTempFail);
  }

  static Settings settings(std::string_view restrictions) {
    Settings s =
        defaults(fmt::format("smtpd_relay_restrictions = permit\nsmtpd_recipient_restrictions = {}\n"
                             "unknown_address_reject_code = 550\n",
                             restrictions));
    s.recipient_limit = 100;
    s.soft_error_limit = s.hard_error_limit = 0;
    return s;
  }

  // Sends one command, runs the lookups it asks for and checks the reply as cmd() does.
  void rcpt(std::string_view line, std::string_view expect) {
    Step s = session_.command(line, false);
    while (s.next == Next::kLookup) {
      asio::io_context io;
      dns::MailDomain found{};
      auto done = [&found](std::exception_ptr, dns::MailDomain m) { found = m; };
      asio::co_spawn(io, dns::mail_domain(dns_, s.lookup), std::move(done));
      io.run();
      s = session_.looked_up(found);
    }
    ASSERT_FALSE(s.replies.empty()) << line;
    std::string r = s.replies.back().render();
    EXPECT_EQ(r.substr(0, r.find("\r\n")), expect) << line;
  }

  dns::StaticResolver dns_;
};

TEST(DnsRestrictions, UnknownRecipientDomain) {
  DnsDialogue d("reject_unknown_recipient_domain, permit");
  begin(d);
  d.rcpt("RCPT TO:<x@mx.example>", "250 2.1.5 Ok");
  d.rcpt("RCPT TO:<x@A-only.example>", "250 2.1.5 Ok");
  d.rcpt("RCPT TO:<x@nx.example>", "550 5.1.2 <x@nx.example>: Recipient address rejected: Domain not found");
  d.rcpt("RCPT TO:<x@null.example>",
         "556 5.1.10 <x@null.example>: Recipient address rejected: Domain null.example does not accept mail "
         "(nullMX)");
  d.rcpt("RCPT TO:<x@servfail.example>",
         "450 4.1.2 <x@servfail.example>: Recipient address rejected: Domain not found");
  // Our own domains, address literals and names that cannot exist are never looked up.
  size_t asked = d.dns_.queries().size();
  d.rcpt("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  d.rcpt("RCPT TO:<x@[192.0.2.99]>", "250 2.1.5 Ok");
  d.rcpt("RCPT TO:<x@nowhere.invalid>",
         "550 5.1.2 <x@nowhere.invalid>: Recipient address rejected: Domain not found");
  EXPECT_EQ(d.dns_.queries().size(), asked);
  // An answer is remembered for the session.
  d.rcpt("RCPT TO:<y@mx.example>", "250 2.1.5 Ok");
  EXPECT_EQ(d.dns_.queries().size(), asked);
  EXPECT_EQ(d.session_.command_summary(), "ehlo=1 mail=1 rcpt=5/9 commands=7/11");
}

TEST(DnsRestrictions, RememberedAnswersAreBounded) {
  DnsDialogue d("reject_unknown_recipient_domain, permit");
  begin(d);
  auto refused = [](int i) {
    return fmt::format("550 5.1.2 <x@nx{}.example>: Recipient address rejected: Domain not found", i);
  };
  for (int i = 0; i <= 256; ++i) d.rcpt(fmt::format("RCPT TO:<x@nx{}.example>", i), refused(i));
  size_t asked = d.dns_.queries().size();
  d.rcpt("RCPT TO:<x@nx256.example>", refused(256));  // the latest is remembered
  EXPECT_EQ(d.dns_.queries().size(), asked);
  d.rcpt("RCPT TO:<x@nx0.example>", refused(0));  // the oldest were forgotten
  EXPECT_EQ(d.dns_.queries().size(), asked + 1);
}

TEST(DnsRestrictions, TemporaryFailureOnlyDefersWhatWouldBeAccepted) {
  // defer_if_permit: a later reject still rejects.
  DnsDialogue d("reject_unknown_recipient_domain, reject");
  begin(d);
  d.rcpt("RCPT TO:<x@servfail.example>",
         "554 5.7.1 <x@servfail.example>: Recipient address rejected: Access denied");
}

TEST(DnsRestrictions, NoLookupUnlessConfigured) {
  DnsDialogue d("permit");
  begin(d);
  d.rcpt("RCPT TO:<x@nx.example>", "250 2.1.5 Ok");
  DnsDialogue e("permit_mynetworks, reject_unknown_recipient_domain");
  e.session_.set_sasl_user("alice@example.test");
  begin(e);
  e.rcpt("RCPT TO:<x@nx.example>", "550 5.1.2 <x@nx.example>: Recipient address rejected: Domain not found");
  EXPECT_TRUE(d.dns_.queries().empty());
}

TEST(DnsRestrictions, UnknownSenderDomain) {
  DnsDialogue d("reject_unknown_sender_domain, permit");
  begin(d, "s@nx.example");
  d.rcpt("RCPT TO:<x@mx.example>", "550 5.1.8 <s@nx.example>: Sender address rejected: Domain not found");
  DnsDialogue n("reject_unknown_sender_domain, permit");
  begin(n, "s@null.example");
  n.rcpt("RCPT TO:<alice@example.test>",
         "550 5.7.27 <s@null.example>: Sender address rejected: Domain null.example does not accept mail "
         "(nullMX)");
  DnsDialogue ok("reject_unknown_sender_domain, permit");
  begin(ok, "s@a-only.example");
  ok.rcpt("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  // The null sender and our own domains are not looked up.
  DnsDialogue ours("reject_unknown_sender_domain, permit");
  begin(ours, "");
  ours.rcpt("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  ours.cmd("RSET", "250 2.0.0 Ok");
  ours.cmd("MAIL FROM:<bob@example.test>", "250 2.1.0 Ok");
  ours.rcpt("RCPT TO:<alice@example.test>", "250 2.1.5 Ok");
  EXPECT_TRUE(ours.dns_.queries().empty());
}

TEST(DnsRestrictions, BothDomainsLookedUpForOneRcpt) {
  DnsDialogue d("reject_unknown_sender_domain, reject_unknown_recipient_domain, permit");
  begin(d, "s@a-only.example");
  d.rcpt("RCPT TO:<x@null.example>",
         "556 5.1.10 <x@null.example>: Recipient address rejected: Domain null.example does not accept mail "
         "(nullMX)");
  EXPECT_EQ(d.dns_.queries(), (std::vector<std::string>{"a-only.example/15", "a-only.example/1",
                                                        "a-only.example/28", "null.example/15"}));
}

TEST(DnsRestrictions, UnknownAddressRejectCodeIsChecked) {
  auto cfg = config::Config::from_text("/nonexistent", "unknown_address_reject_code = 250\n", "main.cf");
  ASSERT_TRUE(cfg.ok());
  auto p = Policy::load(*cfg, "smtp", HostFacts{});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("unknown_address_reject_code"), std::string::npos);
}

}  // namespace
}  // namespace postern::smtp::server

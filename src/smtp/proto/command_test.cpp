#include "smtp/proto/command.hpp"

#include <gtest/gtest.h>

#include "smtp/proto/line_buffer.hpp"

namespace postern::smtp::proto {
namespace {

ParseResult parse(std::string_view line) {
  return parse_command(line, ParseOptions{});
}

TEST(Command, GuideDialogueLowerCaseWithoutBrackets) {
  auto m = parse("mail from: root@localhost");
  ASSERT_FALSE(m.error) << m.error->render();
  EXPECT_EQ(m.command.verb, Verb::kMail);
  EXPECT_EQ(m.command.address.str(), "root@localhost");
  auto r = parse("rcpt to: alice@localhost");
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.command.address.str(), "alice@localhost");
  EXPECT_EQ(parse("ehlo localhost").command.arg, "localhost");
  EXPECT_EQ(parse("data").command.verb, Verb::kData);
  EXPECT_EQ(parse("QuIt").command.verb, Verb::kQuit);
}

TEST(Command, MailParameters) {
  auto m = parse("MAIL FROM:<a@b.c> SIZE=1000 BODY=8BITMIME SMTPUTF8");
  ASSERT_FALSE(m.error);
  EXPECT_EQ(*m.command.mail.size, 1000u);
  EXPECT_EQ(m.command.mail.body, Body::k8BitMime);
  EXPECT_TRUE(m.command.mail.smtputf8);
  EXPECT_EQ(parse("MAIL FROM:<a@b.c> SIZE=x").error->code, 501);
  EXPECT_EQ(parse("MAIL FROM:<a@b.c> FOO=bar").error->code, 555);
  EXPECT_EQ(parse("MAIL FROM:<a@b.c> BODY=BINARYMIME").error->code, 501);
  EXPECT_EQ(parse("MAIL FROM:<a@b.c> SIZE=99999999999999999999999").error->code, 501);
}

TEST(Command, DsnMailParameters) {
  auto m = parse("MAIL FROM:<a@x.example> RET=HDRS ENVID=QQ314159+2B1 SIZE=10");
  ASSERT_FALSE(m.error) << m.error->render();
  EXPECT_EQ(m.command.mail.ret, Ret::kHdrs);
  EXPECT_EQ(m.command.mail.envid, "QQ314159+1");
  EXPECT_EQ(*m.command.mail.size, 10u);
  auto plain = parse("MAIL FROM:<a@x.example>");
  EXPECT_EQ(plain.command.mail.ret, Ret::kUnspecified);
  EXPECT_FALSE(plain.command.mail.envid);
  EXPECT_EQ(parse("mail from:<> ret=full").command.mail.ret, Ret::kFull);
}

TEST(Command, RequireTlsMailParameter) {
  EXPECT_TRUE(parse("MAIL FROM:<a@x.example> REQUIRETLS").command.mail.requiretls);
  EXPECT_TRUE(parse("mail from:<a@x.example> requiretls size=3").command.mail.requiretls);
  EXPECT_FALSE(parse("MAIL FROM:<a@x.example>").command.mail.requiretls);
  EXPECT_EQ(parse("MAIL FROM:<a@x.example> REQUIRETLS=yes").error->render(),
            "555 5.5.4 Unsupported option: REQUIRETLS\r\n");
}

TEST(Command, DsnRcptParameters) {
  auto r = parse("RCPT TO:<b@elsewhere.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;B+40elsewhere.example");
  ASSERT_FALSE(r.error) << r.error->render();
  EXPECT_EQ(r.command.rcpt.notify, kNotifySuccess | kNotifyDelay);
  ASSERT_TRUE(r.command.rcpt.orcpt);
  EXPECT_EQ(r.command.rcpt.orcpt->type, "rfc822");
  EXPECT_EQ(r.command.rcpt.orcpt->address, "B@elsewhere.example");
  EXPECT_EQ(parse("RCPT TO:<b@e.example> notify=never").command.rcpt.notify, kNotifyNever);
  EXPECT_EQ(parse("RCPT TO:<b@e.example>").command.rcpt.notify, 0);
}

TEST(Command, DsnParameterErrors) {
  struct Case {
    const char* line;
    const char* reply;
  };
  const Case cases[] = {
      {"MAIL FROM:<a@x.example> RET=HEADERS", "501 5.5.4 Bad RET parameter syntax"},
      {"MAIL FROM:<a@x.example> RET", "501 5.5.4 Bad RET parameter syntax"},
      {"MAIL FROM:<a@x.example> RET=FULL RET=FULL", "501 5.5.4 Bad RET parameter syntax"},
      {"MAIL FROM:<a@x.example> RET=FULL ret=HDRS", "501 5.5.4 Bad RET parameter syntax"},
      {"MAIL FROM:<a@x.example> ENVID=a ENVID=b", "501 5.5.4 Bad ENVID parameter syntax"},
      {"MAIL FROM:<a@x.example> ENVID", "501 5.5.4 Bad ENVID parameter syntax"},
      {"MAIL FROM:<a@x.example> ENVID=a+0Db", "501 5.5.4 Bad ENVID parameter syntax"},
      {"MAIL FROM:<a@x.example> ENVID=a+2", "501 5.5.4 Bad ENVID parameter syntax"},
      {"MAIL FROM:<a@x.example> ENVID=a=b", "501 5.5.4 Bad parameter syntax"},
      {"MAIL FROM:<a@x.example> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY"},
      {"RCPT TO:<b@x.example> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad NOTIFY parameter syntax"},
      {"RCPT TO:<b@x.example> NOTIFY=SOMETIMES", "501 5.5.4 Bad NOTIFY parameter syntax"},
      {"RCPT TO:<b@x.example> NOTIFY", "501 5.5.4 Bad NOTIFY parameter syntax"},
      {"RCPT TO:<b@x.example> NOTIFY=FAILURE NOTIFY=FAILURE", "501 5.5.4 Bad NOTIFY parameter syntax"},
      {"RCPT TO:<b@x.example> ORCPT=b@x.example", "501 5.5.4 Bad ORCPT parameter syntax"},
      {"RCPT TO:<b@x.example> ORCPT=rfc822;", "501 5.5.4 Bad ORCPT parameter syntax"},
      {"RCPT TO:<b@x.example> ORCPT=rfc822;b+0A", "501 5.5.4 Bad ORCPT parameter syntax"},
      {"RCPT TO:<b@x.example> ORCPT=rfc822;b ORCPT=rfc822;b", "501 5.5.4 Bad ORCPT parameter syntax"},
      {"RCPT TO:<b@x.example> RET=FULL", "555 5.5.4 Unsupported option: RET"},
      {"RCPT TO:<b@x.example> ENVID=x", "555 5.5.4 Unsupported option: ENVID"},
  };
  for (const auto& c : cases) {
    auto r = parse(c.line);
    ASSERT_TRUE(r.error) << c.line;
    std::string got = r.error->render();
    EXPECT_EQ(got.substr(0, got.size() - 2), c.reply) << c.line;
  }
  // The lengths RFC 3461 allows, counted on the wire: ENVID 100, ORCPT 500.
  std::string envid(kMaxEnvidLength, 'e');
  EXPECT_FALSE(parse("MAIL FROM:<a@x.example> ENVID=" + envid).error);
  EXPECT_EQ(parse("MAIL FROM:<a@x.example> ENVID=" + envid + "e").error->code, 501);
  std::string orcpt = "rfc822;" + std::string(kMaxOrcptLength - 7, 'o');
  EXPECT_FALSE(parse("RCPT TO:<b@x.example> ORCPT=" + orcpt).error);
  EXPECT_EQ(parse("RCPT TO:<b@x.example> ORCPT=" + orcpt + "o").error->code, 501);
}

TEST(Command, Utf8SenderOnlyWithSmtputf8) {
  EXPECT_FALSE(parse("MAIL FROM:<jörg@example.org> SMTPUTF8").error);
  auto e = parse("MAIL FROM:<jörg@example.org>");
  ASSERT_TRUE(e.error);
  EXPECT_EQ(e.error->code, 553);
  EXPECT_EQ(e.error->enhanced, "5.6.7");
}

TEST(Command, Errors) {
  EXPECT_EQ(parse("FOO").error->code, 500);
  EXPECT_EQ(parse("MAIL TO:<a@b>").error->code, 501);
  EXPECT_EQ(parse("RCPT TO:<>").error->code, 501);
  EXPECT_EQ(parse("RCPT TO:<a@b.c> FOO=bar").error->code, 555);
  EXPECT_EQ(parse("HELO").error->code, 501);
  EXPECT_EQ(parse("DATA x").error->code, 501);
  auto nul = parse(std::string_view("NOOP\0x", 6));
  EXPECT_EQ(nul.error->code, 500);
  EXPECT_EQ(parse("RCPT TO:<a@b.c").error->enhanced, "5.1.3");
  EXPECT_EQ(parse("MAIL FROM:<a@@b.c>").error->enhanced, "5.1.7");
}

TEST(Command, Bdat) {
  auto b = parse("BDAT 1000 LAST");
  ASSERT_FALSE(b.error);
  EXPECT_EQ(b.command.chunk_size, 1000u);
  EXPECT_TRUE(b.command.last);
  EXPECT_FALSE(parse("bdat 0").command.last);
  EXPECT_EQ(parse("BDAT").error->code, 501);
  EXPECT_EQ(parse("BDAT -1").error->code, 501);
  EXPECT_EQ(parse("BDAT 10 FIRST").error->code, 501);
}

TEST(Reply, Multiline) {
  Reply r;
  r.code = 250;
  r.enhanced = "2.0.0";
  r.lines = {"a", "b"};
  EXPECT_EQ(r.render(), "250-2.0.0 a\r\n250 2.0.0 b\r\n");
  EXPECT_EQ(Reply(354, "", "go").render(), "354 go\r\n");
}

// Feeds `input` split at every byte boundary and returns the lines seen, with "!" for a too-long line.
std::vector<std::string> lines_of(std::string_view input, size_t split, size_t max) {
  LineBuffer buf(max);
  std::vector<std::string> out;
  auto drain = [&] {
    std::string_view line;
    while (true) {
      auto st = buf.next(line);
      if (st == LineBuffer::Status::kNeedMore) break;
      out.push_back(st == LineBuffer::Status::kTooLong ? "!" : std::string(line));
    }
  };
  buf.append(input.substr(0, split));
  drain();
  buf.append(input.substr(split));
  drain();
  return out;
}

TEST(LineBuffer, EverySplitGivesTheSameLines) {
  std::string input = "EHLO x\r\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\r\n" + std::string(100, 'z') + "\r\nQUIT\r\n";
  std::vector<std::string> expect = {"EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "!", "QUIT"};
  for (size_t i = 0; i <= input.size(); ++i) EXPECT_EQ(lines_of(input, i, 64), expect) << "split at " << i;
}

TEST(Command, DsnParametersArriveWhateverTheSplit) {
  std::string input =
      "MAIL FROM:<a@x.example> RET=HDRS ENVID=abc+2B\r\nRCPT TO:<b@y.example> NOTIFY=FAILURE "
      "ORCPT=rfc822;b@y.example\r\n";
  for (size_t i = 0; i <= input.size(); ++i) {
    auto lines = lines_of(input, i, 512);
    ASSERT_EQ(lines.size(), 2u) << i;
    auto m = parse(lines[0]);
    auto r = parse(lines[1]);
    ASSERT_FALSE(m.error || r.error) << i;
    EXPECT_EQ(m.command.mail.envid, "abc+");
    EXPECT_EQ(r.command.rcpt.notify, kNotifyFailure);
    EXPECT_EQ(r.command.rcpt.orcpt->address, "b@y.example");
  }
}

TEST(LineBuffer, HugeLineIsDroppedWithBoundedMemory) {
  LineBuffer buf(2048);
  std::string chunk(65536, 'x');
  std::string_view line;
  int too_long = 0;
  for (int i = 0; i < 16; ++i) {
    buf.append(chunk);
    while (true) {
      auto st = buf.next(line);
      if (st == LineBuffer::Status::kNeedMore) break;
      if (st == LineBuffer::Status::kTooLong) ++too_long;
    }
    EXPECT_LE(buf.pending().size(), 2048u);
  }
  buf.append("\r\nNOOP\r\n");
  EXPECT_EQ(buf.next(line), LineBuffer::Status::kLine);
  EXPECT_EQ(line, "NOOP");
  EXPECT_EQ(too_long, 1);
}

}  // namespace
}  // namespace postern::smtp::proto

#include "pop3/proto/command.hpp"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace postern::pop3::proto {
namespace {

using Args = std::vector<std::string>;

Command parse_ok(std::string_view line) {
  Command c;
  EXPECT_TRUE(parse_command(line, c)) << line;
  return c;
}

bool refused(std::string_view line) {
  Command c;
  c.verb = "STALE";
  c.args = {"stale"};
  bool ok = parse_command(line, c);
  return !ok && c.verb != "STALE";  // refused, and nothing of an earlier command left behind
}

TEST(Pop3Command, KeywordOnly) {
  for (std::string_view verb :
       {"STAT", "LIST", "UIDL", "NOOP", "RSET", "QUIT", "CAPA", "STLS", "AUTH", "TOP"}) {
    Command c = parse_ok(verb);
    EXPECT_EQ(c.verb, verb);
    EXPECT_TRUE(c.args.empty()) << verb;
  }
}

TEST(Pop3Command, KeywordIsCaseInsensitiveAndUpperCased) {
  EXPECT_EQ(parse_ok("stat").verb, "STAT");
  EXPECT_EQ(parse_ok("Retr 1").verb, "RETR");
  EXPECT_EQ(parse_ok("tOp 1 2").verb, "TOP");
  EXPECT_EQ(parse_ok("uidl").verb, "UIDL");
}

TEST(Pop3Command, Arguments) {
  EXPECT_EQ(parse_ok("RETR 1").args, Args{"1"});
  EXPECT_EQ(parse_ok("TOP 3 10").args, (Args{"3", "10"}));
  EXPECT_EQ(parse_ok("USER alice@example.test").args, Args{"alice@example.test"});
  EXPECT_EQ(parse_ok("APOP alice c4c9334bac560ecc979e58001b3e22fb").args,
            (Args{"alice", "c4c9334bac560ecc979e58001b3e22fb"}));
  // Arguments keep their case.
  EXPECT_EQ(parse_ok("user Alice@Example.TEST").args, Args{"Alice@Example.TEST"});
}

TEST(Pop3Command, ExtraSpacesBetweenArgumentsAreIgnored) {
  EXPECT_EQ(parse_ok("TOP  1   2").args, (Args{"1", "2"}));
  EXPECT_EQ(parse_ok("LIST 1 ").args, Args{"1"});
  EXPECT_TRUE(parse_ok("NOOP ").args.empty());
}

TEST(Pop3Command, PassKeepsTheWholeRestOfTheLine) {
  EXPECT_EQ(parse_ok("PASS demo-password").args, Args{"demo-password"});
  EXPECT_EQ(parse_ok("PASS two words ").args, Args{"two words "});
  EXPECT_EQ(parse_ok("pass  leading").args, Args{" leading"});
  EXPECT_EQ(parse_ok("PASS ").args, Args{""});
  EXPECT_TRUE(parse_ok("PASS").args.empty());
  // A long password is not an overlong argument.
  std::string long_password(1000, 'p');
  EXPECT_EQ(parse_ok("PASS " + long_password).args, Args{long_password});
}

TEST(Pop3Command, AuthPlainWithInitialResponse) {
  Command c = parse_ok("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABkZW1vLXBhc3N3b3Jk");
  EXPECT_EQ(c.verb, "AUTH");
  EXPECT_EQ(c.args, (Args{"PLAIN", "AGFsaWNlQGV4YW1wbGUudGVzdABkZW1vLXBhc3N3b3Jk"}));
  EXPECT_EQ(parse_ok("AUTH PLAIN =").args, (Args{"PLAIN", "="}));
}

TEST(Pop3Command, KeywordMustBeThreeOrFourLetters) {
  EXPECT_TRUE(refused(""));
  EXPECT_TRUE(refused(" "));
  EXPECT_TRUE(refused(" STAT"));
  EXPECT_TRUE(refused("AB"));
  EXPECT_TRUE(refused("ABCDE"));
  EXPECT_TRUE(refused("STATS 1"));
  EXPECT_TRUE(refused("US3R alice"));
  EXPECT_TRUE(refused("LIS\t1"));
  EXPECT_TRUE(refused("ST-T"));
  EXPECT_TRUE(refused("\xc3\xa9t\xc3\xa9"));
  EXPECT_TRUE(refused(std::string_view("STA\0", 4)));
  // Unknown but well-formed keywords are the session's business, not the parser's.
  EXPECT_EQ(parse_ok("XYZZ").verb, "XYZZ");
}

TEST(Pop3Command, ArgumentLengthLimit) {
  std::string at_limit(255, 'a'), over(256, 'a');
  EXPECT_EQ(parse_ok("USER " + at_limit).args, Args{at_limit});
  EXPECT_TRUE(refused("USER " + over));
  EXPECT_TRUE(refused("TOP 1 " + over));
  EXPECT_TRUE(refused("LIST " + over));
}

TEST(Pop3Command, ResetsTheOutputOnEachCall) {
  Command c = parse_ok("TOP 1 2");
  EXPECT_TRUE(parse_command("STAT", c));
  EXPECT_EQ(c.verb, "STAT");
  EXPECT_TRUE(c.args.empty());
}

TEST(Pop3MsgNumber, Valid) {
  EXPECT_EQ(parse_msg_number("1"), 1u);
  EXPECT_EQ(parse_msg_number("42"), 42u);
  EXPECT_EQ(parse_msg_number("4294967295"), 4294967295u);
}

TEST(Pop3MsgNumber, Invalid) {
  for (std::string_view bad : {"", "0", "00", "01", "-1", "+1", " 1", "1 ", "1a", "a", "0x10", "4294967296",
                               "99999999999", "18446744073709551616", "1.0", "\xd9\xa1"}) {
    EXPECT_EQ(parse_msg_number(bad), 0u) << bad;
  }
}

}  // namespace
}  // namespace postern::pop3::proto

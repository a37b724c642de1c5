#include "smtp/proto/address.hpp"

#include <gtest/gtest.h>

namespace postern::smtp::proto {
namespace {

ParsedPath ok(std::string_view s, bool utf8 = false) {
  ParsedPath p = parse_path(s, true, utf8);
  EXPECT_EQ(p.error, AddressError::kNone) << s;
  return p;
}

TEST(Address, PlainAndBracketed) {
  auto p = ok("<alice@example.org>");
  EXPECT_EQ(p.address.local, "alice");
  EXPECT_EQ(p.address.domain, "example.org");
  EXPECT_EQ(ok("alice@example.org").address.str(), "alice@example.org");
  EXPECT_EQ(ok(" <bob@x.y> SIZE=10").rest, "SIZE=10");
}

TEST(Address, NullPath) {
  EXPECT_TRUE(ok("<>").address.null);
  EXPECT_EQ(parse_path("<>", false, false).error, AddressError::kNullNotHere);
  EXPECT_EQ(parse_path("", true, false).error, AddressError::kSyntax);
}

TEST(Address, QuotedLocalPart) {
  auto p = ok("<\"john doe\\\"x>\"@example.org>");
  EXPECT_EQ(p.address.local, "john doe\"x>");
  EXPECT_EQ(p.address.str(), "\"john doe\\\"x>\"@example.org");
  EXPECT_EQ(parse_path("<\"unterminated@x>", true, false).error, AddressError::kSyntax);
}

TEST(Address, DomainsAndLiterals) {
  EXPECT_EQ(ok("<a@[192.0.2.1]>").address.domain, "[192.0.2.1]");
  EXPECT_EQ(ok("<a@[IPv6:2001:db8::1]>").address.domain, "[IPv6:2001:db8::1]");
  for (auto bad : {"<a@[300.1.1.1]>", "<a@-x.org>", "<a@x..org>", "<a@x.org.>", "<a..b@x.org>", "<.a@x.org>",
                   "<a@>", "<@x.org>", "<a b@x.org>", "<a@x.org", "<a@[IPv6:zz]>"})
    EXPECT_NE(parse_path(bad, true, false).error, AddressError::kNone) << bad;
}

TEST(Address, SourceRouteIgnored) {
  auto p = ok("<@relay.example,@b.example:user@c.example>");
  EXPECT_EQ(p.address.str(), "user@c.example");
}

TEST(Address, WithoutDomain) {
  auto p = ok("postmaster");
  EXPECT_EQ(p.address.local, "postmaster");
  EXPECT_TRUE(p.address.domain.empty());
}

TEST(Address, Utf8NeedsSmtputf8) {
  EXPECT_EQ(parse_path("<jörg@example.org>", true, false).error, AddressError::kNeedsUtf8);
  EXPECT_EQ(parse_path("<jorg@exämple.org>", true, false).error, AddressError::kNeedsUtf8);
  auto p = ok("<jörg@exämple.org>", true);
  EXPECT_TRUE(p.address.utf8);
  EXPECT_EQ(parse_path("<j\xff@example.org>", true, true).error, AddressError::kSyntax);
}

TEST(Address, Lengths) {
  std::string local(65, 'a');
  EXPECT_EQ(parse_path("<" + local + "@x.org>", true, false).error, AddressError::kTooLong);
  std::string domain;
  for (int i = 0; i < 60; ++i) domain += "abcd.";
  domain += "org";
  EXPECT_NE(parse_path("<a@" + domain + ">", true, false).error, AddressError::kNone);
}

}  // namespace
}  // namespace postern::smtp::proto

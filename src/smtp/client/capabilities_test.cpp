#include "smtp/client/capabilities.hpp"

#include <gtest/gtest.h>

namespace postern::smtp::client {
namespace {

proto::Reply ehlo(std::vector<std::string> lines) {
  proto::Reply r;
  r.code = 250;
  r.lines = std::move(lines);
  return r;
}

TEST(Capabilities, AllKeywordsCaseInsensitive) {
  Capabilities c = Capabilities::from_ehlo(ehlo(
      {"mx.example", "pipelining", "Size 10240000", "8BITMIME", "smtputf8", "CHUNKING", "StartTLS",
       "AUTH PLAIN login", "AUTH=LOGIN XOAUTH2", "DSN", "ENHANCEDSTATUSCODES", "REQUIRETLS", "X-UNKNOWN y"}));
  EXPECT_TRUE(c.pipelining);
  EXPECT_TRUE(c.size);
  EXPECT_EQ(c.size_limit, 10240000u);
  EXPECT_TRUE(c.eight_bit_mime);
  EXPECT_TRUE(c.smtputf8);
  EXPECT_TRUE(c.chunking);
  EXPECT_TRUE(c.starttls);
  EXPECT_TRUE(c.dsn);
  EXPECT_TRUE(c.enhanced_status_codes);
  EXPECT_TRUE(c.requiretls);
  EXPECT_EQ(c.auth, (std::vector<std::string>{"PLAIN", "LOGIN", "XOAUTH2"}));
  EXPECT_TRUE(c.has_auth("login"));
  EXPECT_FALSE(c.has_auth("CRAM-MD5"));
}

TEST(Capabilities, FirstLineIsTheNameAndBadParametersAreIgnored) {
  // The greeting line names the server; "PIPELINING" there is not an extension.
  Capabilities c = Capabilities::from_ehlo(ehlo({"PIPELINING", "SIZE", "SIZEX", "8BITMIMEX"}));
  EXPECT_FALSE(c.pipelining);
  EXPECT_TRUE(c.size);
  EXPECT_EQ(c.size_limit, 0u);
  EXPECT_FALSE(c.eight_bit_mime);
  c = Capabilities::from_ehlo(ehlo({"mx", "SIZE lots"}));
  EXPECT_TRUE(c.size);
  EXPECT_EQ(c.size_limit, 0u);
  EXPECT_TRUE(Capabilities::from_ehlo(ehlo({"mx"})).auth.empty());
}

}  // namespace
}  // namespace postern::smtp::client

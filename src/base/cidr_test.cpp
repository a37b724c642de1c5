#include "base/cidr.hpp"

#include <gtest/gtest.h>

namespace postern {
namespace {

NetworkList list_of(std::initializer_list<std::string_view> patterns) {
  NetworkList l;
  for (auto p : patterns) {
    auto n = parse_network(p);
    EXPECT_TRUE(n.ok()) << p;
    if (n) l.add(*n);
  }
  return l;
}

TEST(Cidr, PostfixDefaultLoopbackList) {
  NetworkList l = list_of({"127.0.0.0/8", "[::ffff:127.0.0.0]/104", "[::1]/128"});
  EXPECT_TRUE(l.contains("127.0.0.1"));
  EXPECT_TRUE(l.contains("127.255.0.9"));
  EXPECT_TRUE(l.contains("::ffff:127.0.0.1"));
  EXPECT_TRUE(l.contains("::1"));
  EXPECT_TRUE(l.contains("[::1]"));
  EXPECT_FALSE(l.contains("128.0.0.1"));
  EXPECT_FALSE(l.contains("::2"));
  EXPECT_FALSE(l.contains("::ffff:128.0.0.1"));
  EXPECT_FALSE(l.contains("unknown"));
  EXPECT_FALSE(l.contains(""));
}

TEST(Cidr, HostsAndPrefixes) {
  NetworkList l = list_of({"192.0.2.7", "198.51.100.0/24", "2001:db8::/32", "[2001:db8:1::5]", "0.0.0.0/0"});
  EXPECT_TRUE(l.contains("192.0.2.7"));
  EXPECT_TRUE(l.contains("198.51.100.255"));
  EXPECT_TRUE(l.contains("2001:db8:ffff::1"));
  EXPECT_TRUE(l.contains("2001:db8:1::5"));
  EXPECT_TRUE(l.contains("10.1.1.1"));  // 0.0.0.0/0 holds every IPv4 address...
  EXPECT_TRUE(l.contains("8.8.8.8"));
  EXPECT_FALSE(l.contains("2001:db9::1"));  // ...but no IPv6 one
}

TEST(Cidr, OddPrefixBits) {
  NetworkList l = list_of({"192.0.2.64/27"});
  EXPECT_TRUE(l.contains("192.0.2.64"));
  EXPECT_TRUE(l.contains("192.0.2.95"));
  EXPECT_FALSE(l.contains("192.0.2.96"));
  EXPECT_FALSE(l.contains("192.0.2.63"));
}

TEST(Cidr, RefusesBadPatterns) {
  for (std::string_view bad :
       {"10.1.2.3/8", "[::1]/129", "1.2.3.4/33", "1.2.3.4/", "1.2.3.4/x", "example.org", "1.2.3", "::g", "",
        "/8", "10.0.0.0/0", "[::1", "1.2.3.4/-1", "1.2.3.4/99999999999999999999"})
    EXPECT_FALSE(parse_network(bad).ok()) << bad;
  auto e = parse_network("10.1.2.3/8");
  EXPECT_NE(e.error().message.find("perhaps you should use \"10.0.0.0/8\""), std::string::npos);
}

TEST(Cidr, FormatsAsPostfixWrites) {
  EXPECT_EQ(parse_network("10.0.0.0/8")->str(), "10.0.0.0/8");
  EXPECT_EQ(parse_network("[::1]")->str(), "[::1]/128");
  EXPECT_EQ(network_of(*parse_ip("192.0.2.77"), 24).str(), "192.0.2.0/24");
  EXPECT_EQ(network_of(*parse_ip("2001:db8::9"), 64).str(), "[2001:db8::]/64");
  EXPECT_EQ(format_ip(*parse_ip("::ffff:192.0.2.1")), "192.0.2.1");
}

}  // namespace
}  // namespace postern

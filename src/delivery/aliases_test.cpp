#include "delivery/aliases.hpp"

#include <gtest/gtest.h>

namespace postern::delivery {
namespace {

using Targets = std::vector<std::string>;

TEST(Aliases, EtcAliasesFormat) {
  auto t = parse_aliases(
      "# comment\npostmaster: root\nTeam: alice, bob,\n  carol\n\"quoted name\": \"x y\"\nbad line\n");
  EXPECT_EQ(t["postmaster"], Targets{"root"});
  EXPECT_EQ(t["team"], (Targets{"alice", "bob", "carol"}));
  EXPECT_EQ(t["quoted name"], Targets{"x y"});
  EXPECT_EQ(t.count("bad line"), 0u);
}

TEST(Aliases, VirtualFormat) {
  auto t = parse_aliases(
      "postmaster@example.org  alice@example.org\n"
      "sales@example.org alice@example.org bob@example.org,carol@example.org\n"
      "@catchall.example\tops@example.org\n"
      "# comment\n"
      "Long@Example.org a@example.org,\n"
      "  b@example.org\n",
      TableFormat::kVirtual);
  EXPECT_EQ(t["postmaster@example.org"], Targets{"alice@example.org"});
  EXPECT_EQ(t["sales@example.org"], (Targets{"alice@example.org", "bob@example.org", "carol@example.org"}));
  EXPECT_EQ(t["@catchall.example"], Targets{"ops@example.org"});
  EXPECT_EQ(t["long@example.org"], (Targets{"a@example.org", "b@example.org"}));
}

}  // namespace
}  // namespace postern::delivery

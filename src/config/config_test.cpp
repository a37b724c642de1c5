#include "config/config.hpp"

#include <gtest/gtest.h>

#include "config/parameters.hpp"

namespace postern::config {
namespace {

TEST(MainCf, ParsesContinuationsAndComments) {
  std::string text =
      "# comment\nmyhostname = mail.example.org\nmydestination = a,\n  b\n  # inner comment\n  c\n\n";
  auto e = parse_main_cf(text, "main.cf");
  ASSERT_TRUE(e) << e.error().message;
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[1].key, "mydestination");
  EXPECT_EQ((*e)[1].value, "a, b c");
  EXPECT_EQ((*e)[1].line, 3);
}

TEST(MainCf, EverySplitOfTheLinesParsesTheSame) {
  // Lines may end in LF or CRLF; the same entries come out.
  std::string lf = "a_b = 1\nc = 2\n  3\n";
  std::string crlf = "a_b = 1\r\nc = 2\r\n  3\r\n";
  auto x = parse_main_cf(lf, "f");
  auto y = parse_main_cf(crlf, "f");
  ASSERT_TRUE(x && y);
  ASSERT_EQ(x->size(), y->size());
  for (size_t i = 0; i < x->size(); ++i) EXPECT_EQ((*x)[i].value, (*y)[i].value);
}

TEST(MainCf, Errors) {
  auto e = parse_main_cf("ok = 1\n  \nnot a setting\n", "/etc/postern/main.cf");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message, "/etc/postern/main.cf, line 3: missing '=' after \"not a setting\"");
  EXPECT_FALSE(parse_main_cf("  leading = 1\n", "f"));
  auto unknown = Config::from_text("/d", "mydomain = x\nno_such_thing = 1\n", "/d/main.cf");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message, "/d/main.cf, line 2: unknown parameter \"no_such_thing\"");
  auto bad = Config::from_text("/d", "message_size_limit = lots\n", "/d/main.cf");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("line 1: message_size_limit: bad value"), std::string::npos);
  EXPECT_FALSE(Config::from_text("/d", "smtpd_timeout = 5x\n", "f"));
  EXPECT_FALSE(Config::from_text("/d", "disable_vrfy_command = maybe\n", "f"));
  EXPECT_FALSE(Config::from_text("/d", "home_mailbox = Mailbox\n", "f"));
  EXPECT_FALSE(Config::from_text("/d", "nosuchservice/smtpd_timeout = 5\n", "f"));
}

TEST(Config, ExpansionAndDefaults) {
  auto c = Config::from_text("/d", "myhostname = mail.example.org\n", "f");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->get("mydomain"), "example.org");
  EXPECT_EQ(c->get("mydestination"), "mail.example.org, localhost.example.org, localhost");
  EXPECT_EQ(c->raw("mydestination"), "$myhostname, localhost.$mydomain, localhost");
  EXPECT_EQ(c->get("smtpd_banner"), "mail.example.org ESMTP Postern");
  EXPECT_EQ(c->get_int("smtpd_timeout"), 300);
  EXPECT_EQ(c->get_path("passwd_file"), "/d/users");
  auto d = Config::from_text("/d",
                             "myhostname = h.x\nmyorigin = ${mydomain}\nsmtpd_banner = "
                             "${virtual_mailbox_domains?v}${virtual_mailbox_domains:none}\n",
                             "f");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->get("myorigin"), "x");
  EXPECT_EQ(d->get("smtpd_banner"), "none");
}

TEST(Config, ExpansionLoopTerminates) {
  auto c = Config::from_text("/d", "myhostname = $mydomain\nmydomain = $myhostname\n", "f");
  ASSERT_TRUE(c);
  (void)c->get("myhostname");
}

TEST(Config, ServiceOverride) {
  auto c = Config::from_text("/d", "smtpd_timeout = 60\nsubmission/smtpd_timeout = 30s\n", "f");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->get_int("smtpd_timeout"), 60);
  EXPECT_EQ(c->get_int("smtpd_timeout", "submission"), 30);
  EXPECT_EQ(c->get_int("smtpd_timeout", "smtp"), 60);
}

TEST(Config, TimeUnits) {
  long long s = 0;
  EXPECT_TRUE(parse_time("5d", s));
  EXPECT_EQ(s, 5 * 86400);
  EXPECT_TRUE(parse_time("10", s));
  EXPECT_EQ(s, 10);
  EXPECT_FALSE(parse_time("d", s));
  EXPECT_FALSE(parse_time("", s));
}

TEST(EditMainCf, ReplacesInPlaceKeepingCommentsAndOrder) {
  std::string text = "# top\nhome_mailbox = Mailbox/\n  continued\n# keep me\nmyorigin = x\n";
  EXPECT_EQ(edit_main_cf(text, "home_mailbox", "Maildir/"),
            "# top\nhome_mailbox = Maildir/\n# keep me\nmyorigin = x\n");
  EXPECT_EQ(edit_main_cf(text, "mydomain", "example.org"), text + "mydomain = example.org\n");
  EXPECT_EQ(edit_main_cf("", "smtpd_sasl_local_domain", ""), "smtpd_sasl_local_domain =\n");
}

TEST(Parameters, TableIsComplete) {
  for (const auto& p : parameters()) {
    EXPECT_FALSE(p.doc.empty()) << p.name;
    EXPECT_EQ(find_parameter(p.name), &p);
  }
  EXPECT_EQ(find_parameter("nonexistent"), nullptr);
}

}  // namespace
}  // namespace postern::config

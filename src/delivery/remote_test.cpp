#include "delivery/remote.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/config.hpp"

namespace postern::delivery {
namespace {

TEST(Relayhost, PostfixForms) {
  EXPECT_FALSE(*parse_relayhost(""));
  auto r = *parse_relayhost("[Smtp.Example.org]:587");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->host, "smtp.example.org");
  EXPECT_EQ(r->port, 587);
  EXPECT_FALSE(r->mx_lookup);
  r = *parse_relayhost("example.org");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->port, 25);
  EXPECT_TRUE(r->mx_lookup);
  r = *parse_relayhost("[::1]:2525");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->host, "::1");
  EXPECT_EQ(r->port, 2525);
  for (const char* bad : {"[example.org", "[]:25", "example.org:", "example.org:0", "example.org:65536",
                          "[example.org]x", ":25"})
    EXPECT_FALSE(parse_relayhost(bad).ok()) << bad;
}

TEST(RemoteSettings, FromConfig) {
  std::string dir = ::testing::TempDir() + "remote_settings";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/sasl_passwd") << "# comment\n[other.example]:587 x:y\n[smtp.example.org]:587 "
                                         "bob:s3cret:with:colons\n";
  std::ofstream(dir + "/main.cf") << "relayhost = [smtp.example.org]:587\nsmtp_sasl_auth_enable = yes\n"
                                     "smtp_sasl_password_maps = hash:sasl_passwd\ninet_protocols = ipv4\n"
                                     "smtp_tls_security_level = encrypt\nsmtp_helo_timeout = 7s\n"
                                     "myhostname = mail.example.test\n";
  auto cfg = config::Config::load(dir);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  auto s = RemoteSettings::from_config(*cfg);
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_TRUE(s->relay_credentials);
  EXPECT_EQ(s->relay_credentials->user, "bob");
  EXPECT_EQ(s->relay_credentials->password, "s3cret:with:colons");
  EXPECT_TRUE(s->want_v4);
  EXPECT_FALSE(s->want_v6);
  EXPECT_EQ(s->policy.tls, smtp::client::TlsPolicy::kEncrypt);
  EXPECT_EQ(s->policy.helo_name, "mail.example.test");
  EXPECT_EQ(s->timeouts.at(smtp::client::Timeout::kHelo), std::chrono::seconds(7));
  std::ofstream(dir + "/main.cf") << "smtp_tls_security_level = dane-ish\n";
  cfg = config::Config::load(dir);
  EXPECT_FALSE(cfg.ok() && RemoteSettings::from_config(*cfg).ok());
}

}  // namespace
}  // namespace postern::delivery

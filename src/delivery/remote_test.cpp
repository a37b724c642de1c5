#include "delivery/remote.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ssl/context.hpp>
#include <asio/use_future.hpp>
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
  EXPECT_EQ(s->tls_level, TlsLevel::kEncrypt);
  EXPECT_EQ(s->policy.helo_name, "mail.example.test");
  EXPECT_EQ(s->timeouts.at(smtp::client::Timeout::kHelo), std::chrono::seconds(7));
  EXPECT_FALSE(s->mta_sts);  // not with a relayhost
  std::ofstream(dir + "/main.cf") << "smtp_tls_security_level = dane-only\n";
  cfg = config::Config::load(dir);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  EXPECT_EQ(RemoteSettings::from_config(*cfg)->tls_level, TlsLevel::kDaneOnly);
  EXPECT_TRUE(RemoteSettings::from_config(*cfg)->mta_sts);
  std::ofstream(dir + "/main.cf") << "smtp_mta_sts = no\n";
  cfg = config::Config::load(dir);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  EXPECT_FALSE(RemoteSettings::from_config(*cfg)->mta_sts);
  std::ofstream(dir + "/main.cf") << "smtp_tls_security_level = dane-ish\n";
  cfg = config::Config::load(dir);
  EXPECT_FALSE(cfg.ok() && RemoteSettings::from_config(*cfg).ok());
  std::ofstream(dir + "/main.cf") << "smtp_tls_CAfile = no-such-ca.pem\nsmtp_tls_security_level = verify\n";
  cfg = config::Config::load(dir);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  auto missing = RemoteSettings::from_config(*cfg);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("smtp_tls_CAfile"), std::string::npos) << missing.error().message;
}

// A DANE-EE(3) SPKI SHA-256 record, a PKIX-EE(1) one (unusable for SMTP) and a DANE-TA(2) full certificate
// one.
const dns::Tlsa kEe{3, 1, 1, std::vector<uint8_t>(32, 0xab)};
const dns::Tlsa kPkixEe{1, 1, 1, std::vector<uint8_t>(32, 0xcd)};
const dns::Tlsa kTa{2, 0, 0, std::vector<uint8_t>(40, 0x30)};

class HostSecurityTest : public ::testing::Test {
 protected:
  HostSecurity decide(TlsLevel level, std::string host, bool dnssec) {
    asio::io_context io;
    auto done = asio::co_spawn(
        io, host_security(level, resolver_, "example.org", std::move(host), 25, dnssec), asio::use_future);
    io.run();
    return done.get();
  }
  dns::StaticResolver resolver_;
};

TEST_F(HostSecurityTest, NonDaneLevelsAskNoDns) {
  EXPECT_EQ(decide(TlsLevel::kNone, "mx.example.org", true).tls, smtp::client::TlsPolicy::kNone);
  EXPECT_EQ(decide(TlsLevel::kMay, "mx.example.org", true).tls, smtp::client::TlsPolicy::kMay);
  auto encrypt = decide(TlsLevel::kEncrypt, "mx.example.org", true);
  EXPECT_EQ(encrypt.tls, smtp::client::TlsPolicy::kEncrypt);
  EXPECT_EQ(encrypt.check, HostSecurity::Check::kNone);
  auto verify = decide(TlsLevel::kVerify, "mx.example.net", false);
  EXPECT_EQ(verify.tls, smtp::client::TlsPolicy::kEncrypt);
  EXPECT_EQ(verify.check, HostSecurity::Check::kPkix);
  EXPECT_EQ(verify.names, std::vector<std::string>{"mx.example.net"});
  auto secure = decide(TlsLevel::kSecure, "mx.example.net", false);
  EXPECT_EQ(secure.check, HostSecurity::Check::kPkix);
  EXPECT_EQ(secure.names, (std::vector<std::string>{"mx.example.net", "example.org"}));
  EXPECT_TRUE(resolver_.queries().empty());
}

TEST_F(HostSecurityTest, UsableSecureTlsaMakesDaneMandatory) {
  resolver_.add_tlsa("_25._tcp.mx.example.org", kEe);
  resolver_.add_tlsa("_25._tcp.mx.example.org", kPkixEe);
  resolver_.add_tlsa("_25._tcp.mx.example.org", kTa);
  resolver_.set_secure("_25._tcp.mx.example.org");
  for (TlsLevel level : {TlsLevel::kDane, TlsLevel::kDaneOnly}) {
    auto s = decide(level, "mx.example.org", true);
    EXPECT_EQ(s.tls, smtp::client::TlsPolicy::kEncrypt);
    EXPECT_EQ(s.check, HostSecurity::Check::kDane);
    EXPECT_EQ(s.tlsa, (std::vector<dns::Tlsa>{kEe, kTa}));  // PKIX-EE dropped (RFC 7672 3.1.3)
    EXPECT_EQ(s.names, std::vector<std::string>{"mx.example.org"});
    EXPECT_TRUE(s.defer.empty());
  }
  EXPECT_EQ(resolver_.queries().back(), "_25._tcp.mx.example.org/52");
}

TEST_F(HostSecurityTest, InsecureAnswersAreOpportunistic) {
  resolver_.add_tlsa("_25._tcp.mx.example.org", kEe);  // present, but not validated
  auto s = decide(TlsLevel::kDane, "mx.example.org", true);
  EXPECT_EQ(s.tls, smtp::client::TlsPolicy::kMay);
  EXPECT_EQ(s.check, HostSecurity::Check::kNone);
  EXPECT_NE(decide(TlsLevel::kDaneOnly, "mx.example.org", true).defer, "");
  // Insecure MX or address records: the TLSA records are not even asked for.
  resolver_.set_secure("_25._tcp.mx.example.org");
  size_t asked = resolver_.queries().size();
  EXPECT_EQ(decide(TlsLevel::kDane, "mx.example.org", false).tls, smtp::client::TlsPolicy::kMay);
  EXPECT_NE(decide(TlsLevel::kDaneOnly, "mx.example.org", false).defer, "");
  EXPECT_EQ(resolver_.queries().size(), asked);
  // An address literal has no TLSA base domain.
  EXPECT_EQ(decide(TlsLevel::kDane, "192.0.2.1", true).check, HostSecurity::Check::kNone);
}

TEST_F(HostSecurityTest, NoTlsaRecords) {
  resolver_.add_address("mx.example.org", "192.0.2.1");
  resolver_.set_secure("mx.example.org");
  resolver_.set_secure("_25._tcp.mx.example.org");  // secure NODATA
  auto s = decide(TlsLevel::kDane, "mx.example.org", true);
  EXPECT_EQ(s.tls, smtp::client::TlsPolicy::kMay);
  EXPECT_TRUE(s.defer.empty());
  auto only = decide(TlsLevel::kDaneOnly, "mx.example.org", true);
  EXPECT_NE(only.defer.find("no DNSSEC-validated TLSA records for _25._tcp.mx.example.org"),
            std::string::npos)
      << only.defer;
}

TEST_F(HostSecurityTest, SecureButUnusableTlsaIsMandatoryUnauthenticatedTls) {
  resolver_.add_tlsa("_25._tcp.mx.example.org", kPkixEe);
  resolver_.set_secure("_25._tcp.mx.example.org");
  auto s = decide(TlsLevel::kDane, "mx.example.org", true);
  EXPECT_EQ(s.tls, smtp::client::TlsPolicy::kEncrypt);  // RFC 7672 2.2
  EXPECT_EQ(s.check, HostSecurity::Check::kNone);
  EXPECT_NE(decide(TlsLevel::kDaneOnly, "mx.example.org", true).defer, "");
}

TEST_F(HostSecurityTest, FailedTlsaLookupDefersTheHost) {
  for (dns::Status failure : {dns::Status::kTempFail, dns::Status::kBogus}) {
    resolver_.set_status("_25._tcp.mx.example.org", failure);
    resolver_.set_secure("_25._tcp.mx.example.org");
    auto s = decide(TlsLevel::kDane, "mx.example.org", true);
    EXPECT_NE(s.defer.find("TLSA lookup error for _25._tcp.mx.example.org"), std::string::npos) << s.defer;
  }
}

TEST(MtaStsDelivery, EnforceLeavesOutMxHostsThePolicyDoesNotList) {
  std::string dir = ::testing::TempDir() + "remote_mta_sts";
  std::filesystem::remove_all(dir);
  RemoteSettings settings;
  settings.tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  settings.timeouts[smtp::client::Timeout::kConnect] = std::chrono::seconds(1);
  MtaSts::Fetcher fetch = [](dns::Resolver&, std::string) -> asio::awaitable<Result<std::string>> {
    co_return std::string("version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 600\n");
  };
  settings.mta_sts = std::make_shared<MtaSts>(dir, fetch, [] { return int64_t{1000}; });
  dns::StaticResolver resolver;
  resolver.add_txt("_mta-sts.example.org", "v=STSv1; id=1");
  resolver.add_mx("example.org", 10, "mx.elsewhere.example");
  resolver.add_address("mx.elsewhere.example", "192.0.2.1");  // never connected to
  smtp::client::Message message;
  message.sender = "alice@example.test";
  message.recipients = {{"bob@example.org", "", ""}};
  asio::io_context io;
  auto done = asio::co_spawn(io, deliver_remote(settings, resolver, "example.org", message, nullptr),
                             asio::use_future);
  io.run();
  auto results = done.get();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome.fate, smtp::client::Fate::kDeferred);
  EXPECT_EQ(results[0].outcome.enhanced, "4.7.5");
  EXPECT_EQ(results[0].outcome.text,
            "mx.elsewhere.example is not an MX host of the MTA-STS policy of example.org");
  EXPECT_EQ(results[0].relay, "none");
}

}  // namespace
}  // namespace postern::delivery

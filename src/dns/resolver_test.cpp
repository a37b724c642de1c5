#include "dns/resolver.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <map>
#include <optional>

namespace postern::dns {
namespace {

// Runs one lookup to its end.
template <class T>
T run(asio::awaitable<T> lookup) {
  asio::io_context io;
  std::optional<T> out;
  auto done = [&out](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  };
  asio::co_spawn(io, std::move(lookup), std::move(done));
  io.run();
  EXPECT_TRUE(out);
  return std::move(*out);
}

TEST(StaticResolver, MxRecordsAndNullMx) {
  StaticResolver r;
  r.add_mx("Example.ORG.", 10, "MX1.example.org");
  r.add_mx("example.org", 20, "mx2.example.org.");
  r.add_mx("null.example", 0, ".");
  auto a = run(r.mx("example.org"));
  EXPECT_EQ(a.status, Status::kFound);
  EXPECT_EQ(a.records, (std::vector<Mx>{{10, "mx1.example.org"}, {20, "mx2.example.org"}}));
  EXPECT_FALSE(is_null_mx(a));
  auto n = run(r.mx("null.example"));
  EXPECT_TRUE(is_null_mx(n));
  EXPECT_EQ(r.queries(), (std::vector<std::string>{"example.org/15", "null.example/15"}));
}

TEST(StaticResolver, NoDataAndNxDomain) {
  StaticResolver r;
  r.add_address("a-only.example", "192.0.2.1");
  EXPECT_EQ(run(r.mx("a-only.example")).status, Status::kNoData);
  EXPECT_EQ(run(r.mx("missing.example")).status, Status::kNxDomain);
  EXPECT_EQ(run(r.txt("missing.example")).status, Status::kNxDomain);
}

TEST(StaticResolver, StatusOverridesEveryType) {
  StaticResolver r;
  r.add_mx("flaky.example", 10, "mx.flaky.example");
  r.set_status("flaky.example", Status::kTempFail);
  EXPECT_EQ(run(r.mx("flaky.example")).status, Status::kTempFail);
  EXPECT_EQ(run(r.addresses("flaky.example", true, true)).status, Status::kTempFail);
}

TEST(StaticResolver, AddressesOfBothFamilies) {
  StaticResolver r;
  r.add_address("host.example", "2001:db8::1");
  r.add_address("host.example", "192.0.2.7");
  auto both = run(r.addresses("host.example", true, true));
  EXPECT_EQ(both.status, Status::kFound);
  ASSERT_EQ(both.records.size(), 2u);
  EXPECT_EQ(both.records[0].to_string(), "192.0.2.7");  // A first
  EXPECT_EQ(both.records[1].to_string(), "2001:db8::1");
  auto v6 = run(r.addresses("host.example", false, true));
  ASSERT_EQ(v6.records.size(), 1u);
  EXPECT_TRUE(v6.records[0].is_v6());
  EXPECT_EQ(r.queries().back(), "host.example/28");
  EXPECT_EQ(run(r.addresses("host.example", false, false)).status, Status::kNoData);
}

TEST(StaticResolver, AddressStatusesCombine) {
  StaticResolver r;
  r.add_address("v4.example", "192.0.2.1");
  EXPECT_EQ(run(r.addresses("v4.example", true, true)).status, Status::kFound);
  EXPECT_EQ(run(r.addresses("v4.example", false, true)).status, Status::kNoData);
  EXPECT_EQ(run(r.addresses("none.example", true, true)).status, Status::kNxDomain);
}

TEST(StaticResolver, TxtAndTlsa) {
  StaticResolver r;
  std::string key = "v=DKIM1; k=rsa; p=" + std::string(400, 'A');
  r.add_txt("sel._domainkey.example", key);
  auto t = run(r.txt("sel._domainkey.example"));
  EXPECT_EQ(t.records, std::vector<std::string>{key});
  Tlsa tlsa{3, 1, 1, {1, 2, 3}};
  r.add_tlsa("_25._tcp.mx.example", tlsa);
  auto a = run(r.tlsa("_25._tcp.mx.example", true));
  EXPECT_EQ(a.records, std::vector<Tlsa>{tlsa});
  EXPECT_FALSE(a.secure);
}

TEST(StaticResolver, SecureOnlyWhenValidationWasAsked) {
  StaticResolver r;
  r.add_mx("signed.example", 10, "mx.signed.example");
  r.set_secure("signed.example");
  EXPECT_TRUE(run(r.mx("signed.example", true)).secure);
  EXPECT_FALSE(run(r.mx("signed.example")).secure);
}

TEST(MailDomain, MxThenAddresses) {
  StaticResolver r;
  r.add_mx("mx.example", 10, "mail.mx.example");
  r.add_address("a-only.example", "192.0.2.1");
  r.add_address("v6-only.example", "2001:db8::25");
  r.add_mx("null.example", 0, "");
  r.add_txt("txt-only.example", "v=spf1 -all");
  r.add_mx("mx-flaky.example", 10, "x");
  r.set_status("mx-flaky.example", Status::kTempFail);
  EXPECT_EQ(run(mail_domain(r, "mx.example")), MailDomain::kExists);
  EXPECT_EQ(r.queries(), std::vector<std::string>{"mx.example/15"});  // no address lookup after an MX
  EXPECT_EQ(run(mail_domain(r, "a-only.example")), MailDomain::kExists);
  EXPECT_EQ(run(mail_domain(r, "v6-only.example")), MailDomain::kExists);
  EXPECT_EQ(run(mail_domain(r, "null.example")), MailDomain::kNullMx);
  EXPECT_EQ(run(mail_domain(r, "txt-only.example")), MailDomain::kNotFound);
  EXPECT_EQ(run(mail_domain(r, "mx-flaky.example")), MailDomain::kTempFail);
  size_t before = r.queries().size();
  EXPECT_EQ(run(mail_domain(r, "missing.example")), MailDomain::kNotFound);
  EXPECT_EQ(r.queries().size(), before + 1);  // NXDOMAIN for the MX ends it
}

// A resolver whose server sends whatever the test says.
class Canned : public Resolver {
 public:
  explicit Canned(RawAnswer a) : answer_(std::move(a)) {}
  asio::awaitable<RawAnswer> query(std::string, Type, bool) override { co_return answer_; }

 private:
  RawAnswer answer_;
};

// A resolver whose answers depend on the type asked (names do not matter).
class ByType : public Resolver {
 public:
  explicit ByType(std::map<Type, Status> s) : statuses_(std::move(s)) {}
  asio::awaitable<RawAnswer> query(std::string, Type type, bool) override {
    co_return RawAnswer{statuses_.at(type), false, {}, {}};
  }

 private:
  std::map<Type, Status> statuses_;
};

TEST(MailDomain, FailuresWithoutRecords) {
  using enum Status;
  ByType a_fails({{Type::kMx, kNoData}, {Type::kA, kTempFail}, {Type::kAaaa, kNoData}});
  EXPECT_EQ(run(mail_domain(a_fails, "x.example")), MailDomain::kTempFail);
  ByType mx_fails({{Type::kMx, kTempFail}});  // and nothing else is asked (at() would throw)
  EXPECT_EQ(run(mail_domain(mx_fails, "x.example")), MailDomain::kTempFail);
  ByType bogus({{Type::kMx, kBogus}});
  EXPECT_EQ(run(mail_domain(bogus, "x.example")), MailDomain::kTempFail);
  ByType nothing({{Type::kMx, kNoData}, {Type::kA, kNoData}, {Type::kAaaa, kNoData}});
  EXPECT_EQ(run(mail_domain(nothing, "x.example")), MailDomain::kNotFound);
}

TEST(Resolver, MalformedRecordsAreSkipped) {
  using namespace std::string_literals;
  Canned some(RawAnswer{Status::kFound, false, {"\x00\x0a\xc0\x0c"s, encode_mx(Mx{20, "ok.example"})}, {}});
  auto a = run(some.mx("x.example"));
  EXPECT_EQ(a.status, Status::kFound);
  EXPECT_EQ(a.records, std::vector<Mx>{(Mx{20, "ok.example"})});
  Canned none(RawAnswer{Status::kFound, false, {"\x00"s, "\x01\x02\x03"s}, {}});
  auto b = run(none.addresses("x.example", true, false));
  EXPECT_EQ(b.status, Status::kTempFail);
  EXPECT_TRUE(b.records.empty());
}

}  // namespace
}  // namespace postern::dns

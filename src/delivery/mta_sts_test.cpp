#include "delivery/mta_sts.hpp"

#include <stdlib.h>

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "base/files.hpp"

namespace postern::delivery {
namespace {

namespace fs = std::filesystem;

template <class T>
T run(asio::awaitable<T> op) {
  asio::io_context io;
  std::optional<T> out;
  auto done = [&out](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  };
  asio::co_spawn(io, std::move(op), std::move(done));
  io.run();
  EXPECT_TRUE(out);
  return std::move(*out);
}

// A directory of this test's own: ctest runs the tests of this file in parallel processes.
std::string fresh_dir(const std::string& name) {
  std::string tmpl = ::testing::TempDir() + name + ".XXXXXX";
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

constexpr std::string_view kEnforce = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 1000\n";
constexpr std::string_view kTesting = "version: STSv1\nmode: testing\nmx: *.example.com\nmax_age: 500\n";

TEST(StsCache, StoresLoadsAndExpires) {
  StsCache cache(fresh_dir("sts_cache") + "/mta-sts");  // made at the first store
  EXPECT_FALSE(cache.load("example.com", 100));
  ASSERT_TRUE(cache.store("example.com", "id1", kEnforce, 1100).ok());
  auto c = cache.load("example.com", 100);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, "id1");
  EXPECT_EQ(c->expires, 1100);
  EXPECT_EQ(c->policy.mode, StsMode::kEnforce);
  EXPECT_EQ(c->policy.mx, std::vector<std::string>{"mx.example.com"});
  EXPECT_FALSE(cache.load("example.com", 1100));  // expired
  EXPECT_FALSE(cache.load("other.example", 100));
  EXPECT_FALSE(cache.store("../x", "id", kEnforce, 1100).ok());
  EXPECT_FALSE(cache.load("../mta-sts/example.com", 100));
}

TEST(StsCache, IgnoresBrokenFiles) {
  std::string dir = fresh_dir("sts_cache_broken");
  StsCache cache(dir);
  for (const std::string& bad : std::vector<std::string>{
           "", "id: x\n", "id: x\nexpires: soon\n\n" + std::string(kEnforce),
           "id: x\nexpires: 2000\n\nversion: STSv1\n", "expires: 2000\nid: x\n\n" + std::string(kEnforce)}) {
    std::ofstream(dir + "/example.com") << bad;
    EXPECT_FALSE(cache.load("example.com", 100)) << bad;
  }
}

// A policy source for MtaSts: per domain the text to return or an error; counts the fetches.
struct FakeFetch {
  std::map<std::string, Result<std::string>> answers;
  int fetches = 0;
};

class MtaStsTest : public ::testing::Test {
 protected:
  MtaStsTest()
      : dir_(fresh_dir("mta_sts_policy")), sts_(dir_, MtaSts::Fetcher(fetcher()), [this] { return now_; }) {}
  ~MtaStsTest() override { fs::remove_all(dir_); }

  MtaSts::Fetcher fetcher() {
    return [this](dns::Resolver&, std::string domain) -> asio::awaitable<Result<std::string>> {
      ++fake_.fetches;
      auto it = fake_.answers.find(domain);
      if (it == fake_.answers.end()) co_return Error{"connection refused"};
      co_return it->second;
    };
  }
  std::optional<StsPolicy> policy(const std::string& domain) { return run(sts_.policy(resolver_, domain)); }

  std::string dir_;
  FakeFetch fake_;
  int64_t now_ = 10000;
  dns::StaticResolver resolver_;
  MtaSts sts_;
};

TEST_F(MtaStsTest, NoRecordNoPolicyNoFetch) {
  resolver_.add_txt("_mta-sts.example.com", "v=spf1 -all");
  EXPECT_FALSE(policy("example.com"));
  EXPECT_FALSE(policy("nothing.example"));    // NXDOMAIN
  EXPECT_FALSE(policy("b\xc3\xbc.example"));  // not an A-label domain: not even asked
  EXPECT_EQ(fake_.fetches, 0);
}

TEST_F(MtaStsTest, FetchedOnceThenCachedUntilTheIdChanges) {
  resolver_.add_txt("_mta-sts.example.com", "v=STSv1; id=one");
  fake_.answers.emplace("example.com", std::string(kEnforce));
  auto p = policy("Example.COM");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->mode, StsMode::kEnforce);
  EXPECT_TRUE(fs::exists(dir_ + "/example.com"));
  EXPECT_TRUE(policy("example.com"));
  EXPECT_EQ(fake_.fetches, 1);
  // A new id: fetched again, and the new policy is cached.
  dns::StaticResolver changed;
  changed.add_txt("_mta-sts.example.com", "v=STSv1; id=two");
  fake_.answers.insert_or_assign("example.com", std::string(kTesting));
  p = run(sts_.policy(changed, "example.com"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->mode, StsMode::kTesting);
  EXPECT_EQ(fake_.fetches, 2);
  EXPECT_EQ(StsCache(dir_).load("example.com", now_)->id, "two");
  EXPECT_EQ(StsCache(dir_).load("example.com", now_)->expires, now_ + 500);
  // Expired: fetched again although the id is the same.
  now_ += 501;
  EXPECT_TRUE(run(sts_.policy(changed, "example.com")));
  EXPECT_EQ(fake_.fetches, 3);
}

TEST_F(MtaStsTest, CachedPolicyOutlivesFetchAndDnsFailures) {
  resolver_.add_txt("_mta-sts.example.com", "v=STSv1; id=one");
  fake_.answers.emplace("example.com", std::string(kEnforce));
  ASSERT_TRUE(policy("example.com"));
  // The id changed but the policy host is down (or serves garbage): the cached policy stays in force.
  dns::StaticResolver changed;
  changed.add_txt("_mta-sts.example.com", "v=STSv1; id=two");
  fake_.answers.clear();
  auto p = run(sts_.policy(changed, "example.com"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->mode, StsMode::kEnforce);
  fake_.answers.emplace("example.com", std::string("version: STSv1\n"));
  EXPECT_TRUE(run(sts_.policy(changed, "example.com")));
  EXPECT_EQ(StsCache(dir_).load("example.com", now_)->id, "one");
  // DNS fails, or the record is gone: still the cached policy, without a fetch.
  int fetches = fake_.fetches;
  dns::StaticResolver failing;
  failing.set_status("_mta-sts.example.com", dns::Status::kTempFail);
  EXPECT_TRUE(run(sts_.policy(failing, "example.com")));
  dns::StaticResolver empty;
  EXPECT_TRUE(run(sts_.policy(empty, "example.com")));
  EXPECT_EQ(fake_.fetches, fetches);
  // Until it expires.
  now_ += 1000;
  EXPECT_FALSE(run(sts_.policy(empty, "example.com")));
}

TEST_F(MtaStsTest, FailedFetchWithoutCacheIsNoPolicy) {
  resolver_.add_txt("_mta-sts.example.com", "v=STSv1; id=one");
  EXPECT_FALSE(policy("example.com"));
  EXPECT_EQ(fake_.fetches, 1);
  EXPECT_FALSE(fs::exists(dir_ + "/example.com"));
}

TEST(MtaStsFetch, NoAddressIsAnError) {
  dns::StaticResolver resolver;
  asio::ssl::context tls(asio::ssl::context::tls_client);
  auto fetch = [&]() -> asio::awaitable<std::string> {
    auto r = co_await fetch_sts_policy(resolver, tls, "example.com", true, true, std::chrono::seconds(5));
    co_return r ? "fetched" : r.error().message;
  };
  std::string why = run(fetch());
  EXPECT_TRUE(why.starts_with("no address for mta-sts.example.com")) << why;
}

TEST(MtaStsFetch, ASilentServerTimesOut) {
  // Accepts the connection and says nothing: the TLS handshake waits until the fetch's deadline.
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::ip::tcp::socket peer(io);
  acceptor.async_accept(peer, [](const asio::error_code&) {});
  dns::StaticResolver resolver;
  resolver.add_address("mta-sts.example.com", "127.0.0.1");
  asio::ssl::context tls(asio::ssl::context::tls_client);
  std::string why;
  auto fetch = [&]() -> asio::awaitable<void> {
    auto r = co_await fetch_sts_policy(resolver, tls, "example.com", true, false, std::chrono::seconds(1),
                                       acceptor.local_endpoint().port());
    why = r ? "fetched" : r.error().message;
  };
  auto started = std::chrono::steady_clock::now();
  asio::co_spawn(io, fetch(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
  EXPECT_EQ(why, "fetching the policy of example.com timed out");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_TRUE(peer.is_open());
}

}  // namespace
}  // namespace postern::delivery

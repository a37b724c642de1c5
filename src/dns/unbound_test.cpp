#include "dns/unbound.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/udp.hpp>
#include <asio/use_awaitable.hpp>
#include <optional>

#include <fmt/format.h>

namespace postern::dns {
namespace {

using namespace std::string_literals;
using asio::ip::udp;

TEST(Forwarder, ServerSyntax) {
  EXPECT_EQ(*forwarder("127.0.0.1"), "127.0.0.1@53");
  EXPECT_EQ(*forwarder("127.0.0.1:5353"), "127.0.0.1@5353");
  EXPECT_EQ(*forwarder("[::1]:5353"), "::1@5353");
  EXPECT_EQ(*forwarder("[::1]"), "::1@53");
  EXPECT_EQ(*forwarder("2001:db8::53"), "2001:db8::53@53");
  EXPECT_FALSE(forwarder("dns.example:53"));
  EXPECT_FALSE(forwarder("127.0.0.1:0"));
  EXPECT_FALSE(forwarder("127.0.0.1:65536"));
  EXPECT_FALSE(forwarder("[::1"));
  EXPECT_FALSE(forwarder("[::1]53"));
}

// A loopback DNS server that answers from the first label of the question: "mx" an MX, "null" a null MX,
// "servfail" SERVFAIL, "nx" NXDOMAIN, "empty" NODATA, "a" an A record; "silent" is never answered.
class Responder {
 public:
  explicit Responder(asio::io_context& io)
      : socket_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io, serve(), asio::detached);
  }
  std::string server() const { return fmt::format("127.0.0.1:{}", socket_.local_endpoint().port()); }
  void stop() { socket_.close(); }

 private:
  asio::awaitable<void> serve() {
    char buf[512];
    udp::endpoint from;
    while (true) {
      auto [ec, n] = co_await socket_.async_receive_from(asio::buffer(buf), from,
                                                         asio::experimental::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted) co_return;
      if (ec || n < 17) continue;
      std::string query(buf, n);
      std::string label = query.substr(13, static_cast<uint8_t>(query[12]));
      if (label == "silent") continue;
      size_t qend = query.find('\0', 12) + 5;  // the name, then type and class
      std::string answer;
      int count = 0, rcode = 0;
      auto add = [&](uint16_t type, const std::string& rdata) {
        answer += "\xc0\x0c"s + char(type >> 8) + char(type & 0xff) + "\x00\x01\x00\x00\x00\x3c"s;
        answer += char(rdata.size() >> 8);
        answer += char(rdata.size() & 0xff);
        answer += rdata;
        ++count;
      };
      uint16_t qtype = static_cast<uint16_t>(static_cast<uint8_t>(query[qend - 4]) << 8 |
                                             static_cast<uint8_t>(query[qend - 3]));
      if (label == "servfail") rcode = 2;
      if (label == "nx") rcode = 3;
      if (label == "mx" && qtype == 15) add(15, encode_mx(Mx{10, "Mail.Example.Test"}));
      if (label == "null" && qtype == 15) add(15, encode_mx(Mx{0, ""}));
      if (label == "a" && qtype == 1) add(1, "\xc0\x00\x02\x01"s);
      std::string reply = query.substr(0, 2) + char(0x81) + char(0x80 | rcode) + "\x00\x01"s + char(0) +
                          char(count) + "\x00\x00\x00\x00"s + query.substr(12, qend - 12) + answer;
      co_await socket_.async_send_to(asio::buffer(reply), from,
                                     asio::experimental::as_tuple(asio::use_awaitable));
    }
  }

  udp::socket socket_;
};

class Unbound : public ::testing::Test {
 protected:
  void SetUp() override {
    UnboundOptions options;
    options.servers = {responder_.server()};
    options.timeout = std::chrono::milliseconds(1500);
    auto r = UnboundResolver::create(io_, options);
    ASSERT_TRUE(r.ok()) << r.error().message;
    resolver_ = std::move(*r);
  }

  template <class T>
  T run(asio::awaitable<T> lookup) {
    std::optional<T> out;
    auto done = [this, &out](std::exception_ptr, T v) {
      out = std::move(v);
      io_.stop();
    };
    asio::co_spawn(io_, std::move(lookup), std::move(done));
    io_.restart();
    io_.run_for(std::chrono::seconds(20));
    EXPECT_TRUE(out) << "the lookup never completed";
    return out ? std::move(*out) : T{};
  }

  asio::io_context io_;
  Responder responder_{io_};
  std::unique_ptr<UnboundResolver> resolver_;
};

TEST_F(Unbound, AnswersOfEveryKind) {
  auto mx = run(resolver_->mx("mx.example.test"));
  ASSERT_EQ(mx.status, Status::kFound) << mx.why;
  EXPECT_EQ(mx.records, std::vector<Mx>{(Mx{10, "mail.example.test"})});
  EXPECT_FALSE(mx.secure);
  EXPECT_TRUE(is_null_mx(run(resolver_->mx("null.example.test"))));
  EXPECT_EQ(run(resolver_->mx("nx.example.test")).status, Status::kNxDomain);
  EXPECT_EQ(run(resolver_->mx("empty.example.test")).status, Status::kNoData);
  EXPECT_EQ(run(resolver_->mx("servfail.example.test")).status, Status::kTempFail);
  auto a = run(resolver_->addresses("a.example.test", true, true));
  ASSERT_EQ(a.status, Status::kFound) << a.why;
  ASSERT_EQ(a.records.size(), 1u);
  EXPECT_EQ(a.records[0].to_string(), "192.0.2.1");
}

TEST_F(Unbound, NoAnswerEndsAsATemporaryFailureInTime) {
  auto start = std::chrono::steady_clock::now();
  auto r = run(resolver_->mx("silent.example.test"));
  EXPECT_EQ(r.status, Status::kTempFail);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // The server still answers other names afterwards.
  EXPECT_EQ(run(resolver_->mx("mx.example.test")).status, Status::kFound);
}

TEST_F(Unbound, ValidationIsOnlyDoneWhenAsked) {
  // The responder signs nothing: against the root trust anchor, its answers cannot be validated.
  auto checked = run(resolver_->mx("mx.example.test", true));
  EXPECT_EQ(checked.status, Status::kBogus) << checked.why;
  EXPECT_FALSE(checked.secure);
  EXPECT_EQ(run(resolver_->mx("mx.example.test")).status, Status::kFound);
}

TEST(UnboundCreate, BadServerIsRefused) {
  asio::io_context io;
  UnboundOptions options;
  options.servers = {"not-an-address"};
  auto r = UnboundResolver::create(io, options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("dns_servers"), std::string::npos);
}

}  // namespace
}  // namespace postern::dns

// smtp/client/interop_test.cpp: the client session against Postern's own server session (smtp/server), the
// two talking in memory: a differential check of both sides' reading of RFC 5321, 2920 and 3030.

#include <gtest/gtest.h>

#include <optional>

#include "base/strings.hpp"
#include "config/config.hpp"
#include "smtp/client/session.hpp"
#include "smtp/proto/line_buffer.hpp"
#include "smtp/server/session.hpp"

namespace postern::smtp::client {
namespace {

std::shared_ptr<const server::Policy> server_policy() {
  auto cfg = config::Config::from_text("/nonexistent", "", "main.cf");
  EXPECT_TRUE(cfg.ok());
  server::HostFacts host;
  auto p = server::Policy::load(*cfg, "smtp", host);
  EXPECT_TRUE(p.ok());
  return std::make_shared<const server::Policy>(std::move(*p));
}

server::Settings server_settings(uint64_t size_limit) {
  server::Settings s;
  s.hostname = "mx.example.test";
  s.banner = "mx.example.test ESMTP Postern";
  s.mail_name = "Postern";
  s.myorigin = "example.test";
  s.message_size_limit = size_limit;
  s.policy = server_policy();
  return s;
}

struct Delivered {
  std::vector<std::string> recipients;
  std::string content;
};

// Runs a client session to its end against a server session; returns what the server delivered.
class Pair {
 public:
  Pair(uint64_t size_limit, std::vector<Message> messages)
      : server_(server_settings(size_limit), server::Client{"192.0.2.1"},
                [](std::string_view local, std::string_view domain) {
                  delivery::Resolution r;
                  r.status = to_lower(domain) != "example.test"   ? delivery::RcptStatus::kNotOurDomain
                             : local == "alice" || local == "bob" ? delivery::RcptStatus::kLocal
                                                                  : delivery::RcptStatus::kUnknownUser;
                  return r;
                }),
        client_(policy(), std::move(messages)) {}

  static Policy policy() {
    Policy p;
    p.helo_name = "client.example";
    p.tls = TlsPolicy::kNone;
    return p;
  }

  void run() {
    std::string to_client = server_.greeting().render();
    Step step = client_.start();
    for (int round = 0; round < 100 && !client_.done(); ++round) {
      step = client_.received(to_client);
      std::string to_server = step.send;
      if (step.next == Next::kSendBody) {
        for (auto piece = client_.body_piece(); !piece.empty(); piece = client_.body_piece())
          to_server += piece;
        to_server += client_.body_sent().send;
      }
      to_client = serve(to_server);
    }
    EXPECT_TRUE(client_.done());
  }

  // The server's replies to `bytes`, as its driver (net/server.cpp) would run it.
  std::string serve(std::string_view bytes) {
    lines_.append(bytes);
    std::string out;
    for (;;) {
      if (data_) {
        lines_.consume(server_.data_reader().feed(lines_.pending(), server_.content()));
        if (!server_.data_reader().done()) return out;
        data_ = false;
        out += handle(server_.data_done());
        continue;
      }
      if (bdat_left_ > 0) {
        std::string_view chunk = lines_.pending().substr(0, bdat_left_);
        server_.bdat_feed(chunk);
        bdat_left_ -= chunk.size();
        lines_.consume(chunk.size());
        if (bdat_left_ > 0) return out;
        out += handle(server_.bdat_done());
        continue;
      }
      std::string_view line;
      if (lines_.next(line) != proto::LineBuffer::Status::kLine) return out;
      std::string copy(line);
      out += handle(server_.command(copy, !lines_.empty()));
    }
  }

  std::string handle(server::Step step) {
    std::string out;
    for (const proto::Reply& r : step.replies) out += r.render();
    if (step.next == server::Next::kData) data_ = true;
    if (step.next == server::Next::kBdat) bdat_left_ = step.bdat_size;
    if (step.next == server::Next::kDeliver) {
      delivered_.push_back(Delivered{server_.envelope().recipients, server_.content()});
      out += handle(server_.delivered(store::StoreError{}));
    }
    return out;
  }

  server::Session server_;
  Session client_;
  proto::LineBuffer lines_{2048};
  bool data_ = false;
  uint64_t bdat_left_ = 0;
  std::vector<Delivered> delivered_;
};

Message message(std::vector<std::string> rcpts, std::string_view content) {
  Message m;
  m.sender = "sender@client.example";
  for (std::string& r : rcpts) m.recipients.push_back(Recipient{std::move(r), {}, {}});
  m.content = content;
  return m;
}

TEST(ClientServerInterop, PipelinedBdatWithRefusedRecipient) {
  constexpr std::string_view kContent = "Subject: t\n\n.leading dot\n\xc3\xa9t\xc3\xa9\r\nno final line end";
  Message m = message({"alice@example.test", "carol@example.test", "bob@example.test"}, kContent);
  m.eight_bit = true;
  Pair pair(10000, {m});
  pair.run();
  ASSERT_EQ(pair.delivered_.size(), 1u);
  EXPECT_EQ(pair.delivered_[0].recipients,
            (std::vector<std::string>{"alice@example.test", "bob@example.test"}));
  // The server keeps LF line ends: CRLF in the content came back as LF, the last line got one.
  EXPECT_EQ(pair.delivered_[0].content, "Subject: t\n\n.leading dot\n\xc3\xa9t\xc3\xa9\nno final line end\n");
  const auto& o = pair.client_.outcomes()[0];
  EXPECT_EQ(o[0].fate, Fate::kDelivered);
  EXPECT_EQ(o[0].enhanced, "2.0.0");
  EXPECT_EQ(o[1].fate, Fate::kBounced);
  EXPECT_EQ(o[1].stage, Stage::kRcpt);
  EXPECT_EQ(o[1].code, 550);
  EXPECT_EQ(o[1].enhanced, "5.1.1");
  EXPECT_EQ(o[2].fate, Fate::kDelivered);
  EXPECT_TRUE(pair.client_.capabilities().pipelining && pair.client_.capabilities().chunking);
}

TEST(ClientServerInterop, SeveralMessagesAndLimits) {
  std::string big(200, 'x');
  big += '\n';
  Pair pair(100, {message({"alice@example.test"}, "one\n"), message({"bob@example.test"}, big),
                  message({"carol@example.test"}, "three\n"), message({"bob@example.test"}, "four\n")});
  pair.run();
  ASSERT_EQ(pair.delivered_.size(), 2u);
  EXPECT_EQ(pair.delivered_[0].content, "one\n");
  EXPECT_EQ(pair.delivered_[1].content, "four\n");
  const auto& o = pair.client_.outcomes();
  EXPECT_EQ(o[0][0].fate, Fate::kDelivered);
  EXPECT_EQ(o[1][0].fate, Fate::kBounced);  // larger than the server's SIZE: never sent
  EXPECT_EQ(o[1][0].enhanced, "5.3.4");
  EXPECT_EQ(o[1][0].code, 0);
  EXPECT_EQ(o[2][0].fate, Fate::kBounced);  // unknown user; the next message needs a RSET, which works
  EXPECT_EQ(o[3][0].fate, Fate::kDelivered);
}

}  // namespace
}  // namespace postern::smtp::client

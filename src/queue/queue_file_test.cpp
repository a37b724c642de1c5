#include "queue/queue_file.hpp"

#include <gtest/gtest.h>

namespace postern::queue {
namespace {

QueueFile sample() {
  QueueFile q;
  q.queue_id = "65A1B2C3D4E5F6";
  q.arrival = std::chrono::system_clock::time_point(std::chrono::microseconds(1700000000123456LL));
  q.sender = "alice@example.test";
  q.client = "unknown[127.0.0.1]";
  q.envid = "QQ314159";
  q.ret = smtp::proto::Ret::kHdrs;
  q.recipients = {
      {"bob@other.example",
       RecipientState::kPending,
       "connect to mx.other.example: refused",
       {smtp::proto::kNotifyFailure | smtp::proto::kNotifyDelay, {{"rfc822", "Bob@other.example"}}}},
      {"carol@other.example", RecipientState::kDelivered, "", {smtp::proto::kNotifyNever, {}}},
      {"\"odd: name\"@x.example", RecipientState::kFailed, "", {0, {{"x-local", "odd;name"}}}}};
  return q;
}

TEST(QueueFile, ExactBytes) {
  QueueFile q;
  q.queue_id = "ABC";
  q.arrival = std::chrono::system_clock::time_point(std::chrono::microseconds(5));
  q.recipients = {{"b@x.example", RecipientState::kPending, "", {}}};
  EXPECT_EQ(encode(q, "Subject: s\n\nhi\n"),
            "POSTERN-QUEUE 1\nI3:ABC\nT1:5\nS0:\nZ2:15\nR11:b@x.example\nM15:Subject: s\n\nhi\n\nE0:\n");
}

TEST(QueueFile, DsnRecords) {
  QueueFile q;
  q.queue_id = "ABC";
  q.arrival = std::chrono::system_clock::time_point(std::chrono::microseconds(5));
  q.sender = "a@x";
  q.envid = "abc";
  q.ret = smtp::proto::Ret::kFull;
  q.recipients = {{"b@y", RecipientState::kPending, "", {smtp::proto::kNotifySuccess, {{"rfc822", "B@y"}}}},
                  {"c@y", RecipientState::kPending, "", {}}};
  EXPECT_EQ(
      encode(q, "x\n"),
      "POSTERN-QUEUE 1\nI3:ABC\nT1:5\nS3:a@x\ne3:abc\nr4:FULL\nZ1:2\nR3:b@y\ny7:SUCCESS\no10:rfc822;B@y\n"
      "R3:c@y\nM2:x\n\nE0:\n");
  // The records belong to the recipient before them, in any order.
  auto d = decode(
      "POSTERN-QUEUE 1\nI3:ABC\nT1:5\nr4:hdrs\nS0:\nZ1:2\nR3:b@y\no8:x400;a;b\ny13:delay,failure\n"
      "R3:c@y\nM2:x\n\nE0:\n");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->envelope.ret, smtp::proto::Ret::kHdrs);
  EXPECT_EQ(d->envelope.envid, "");
  const auto& b = d->envelope.recipients[0].dsn;
  EXPECT_EQ(b.notify, smtp::proto::kNotifyDelay | smtp::proto::kNotifyFailure);
  EXPECT_EQ(b.orcpt, (smtp::proto::OriginalRecipient{"x400", "a;b"}));
  EXPECT_EQ(d->envelope.recipients[1].dsn, DsnRequest{});
}

TEST(QueueFile, RequireTlsRecord) {
  QueueFile q;
  q.queue_id = "ABC";
  q.recipients = {{"b@y", RecipientState::kPending, "", {}}};
  q.requiretls = true;
  std::string bytes = encode(q, "x\n");
  EXPECT_EQ(bytes, "POSTERN-QUEUE 1\nI3:ABC\nT1:0\nS0:\nt0:\nZ1:2\nR3:b@y\nM2:x\n\nE0:\n");
  auto d = decode(bytes);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(d->envelope.requiretls);
  EXPECT_FALSE(decode("POSTERN-QUEUE 1\nI3:ABC\nT1:0\nS0:\nt0:\nt0:\nZ1:2\nR3:b@y\nM2:x\n\nE0:\n").ok());
  EXPECT_FALSE(decode("POSTERN-QUEUE 1\nI3:ABC\nT1:0\nS0:\nt1:1\nZ1:2\nR3:b@y\nM2:x\n\nE0:\n").ok());
}

TEST(QueueFile, DelayWarnedRecord) {
  QueueFile q;
  q.queue_id = "ABC";
  q.recipients = {{"b@y", RecipientState::kPending, "", {}}};
  q.delay_warned = true;
  std::string bytes = encode(q, "x\n");
  EXPECT_EQ(bytes, "POSTERN-QUEUE 1\nI3:ABC\nT1:0\nS0:\nw0:\nZ1:2\nR3:b@y\nM2:x\n\nE0:\n");
  auto d = decode(bytes);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(d->envelope.delay_warned);
  // Once, and empty.
  EXPECT_FALSE(decode("POSTERN-QUEUE 1\nI3:ABC\nT1:0\nS0:\nw0:\nw0:\nZ1:2\nR3:b@y\nM2:x\n\nE0:\n").ok());
  EXPECT_FALSE(decode("POSTERN-QUEUE 1\nI3:ABC\nT1:0\nS0:\nw1:1\nZ1:2\nR3:b@y\nM2:x\n\nE0:\n").ok());
}

TEST(QueueFile, RoundTrip) {
  QueueFile q = sample();
  std::string message = "Subject: t\n\nline 1\nE0:\n\n";  // the trailer's bytes inside a message are data
  std::string bytes = encode(q, message);
  auto d = decode(bytes);
  ASSERT_TRUE(d.ok()) << d.error().message;
  q.size = message.size();
  EXPECT_EQ(d->envelope, q);
  EXPECT_EQ(d->message, message);
  auto head = decode(bytes.substr(0, encode_head(q, message.size()).size()), true);
  ASSERT_TRUE(head.ok()) << head.error().message;
  EXPECT_EQ(head->envelope, q);
  EXPECT_TRUE(head->message.empty());
}

TEST(QueueFile, RecipientStateChangesInPlace) {
  QueueFile q = sample();
  std::string bytes = encode(q, "x\n");
  size_t at = bytes.find("R17:bob@other.example");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'D';
  auto d = decode(bytes);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->envelope.recipients[0].state, RecipientState::kDelivered);
}

TEST(QueueFile, SkipsOptionalRecordsOfLaterVersions) {
  std::string bytes = encode(sample(), "x\n");
  bytes.insert(bytes.find("Z1:2"), "n10:1700000999\n");
  auto d = decode(bytes);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->envelope.recipients.size(), 3u);
}

TEST(QueueFile, EveryTruncationIsAnError) {
  std::string bytes = encode(sample(), "Subject: t\n\nbody\n");
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(decode(bytes.substr(0, n)).ok()) << n;
  EXPECT_TRUE(decode(bytes).ok());
}

TEST(QueueFile, RefusesDamage) {
  const std::string good = encode(sample(), "x\n");
  auto damaged = [&](std::string_view from, std::string_view to) {
    std::string b = good;
    size_t at = b.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    b.replace(at, from.size(), to);
    return !decode(b).ok();
  };
  EXPECT_TRUE(damaged("POSTERN-QUEUE 1", "POSTERN-QUEUE 2"));
  EXPECT_TRUE(damaged("I14:", "I15:"));                   // length runs into the next record
  EXPECT_TRUE(damaged("Z1:", "Z01:"));                    // leading zero
  EXPECT_TRUE(damaged("Z1:2", "Z1:3"));                   // size differs from the message
  EXPECT_TRUE(damaged("I14:", "X14:"));                   // unknown required record
  EXPECT_TRUE(damaged("S18:alice@example.test\n", ""));   // no sender
  EXPECT_TRUE(damaged("\nE0:\n", "\nE0:\nextra"));        // bytes after the end
  EXPECT_TRUE(damaged("T16:1700000000123456", "T2:-1"));  // negative time
  EXPECT_TRUE(damaged("C18:", "W18:"));                   // a reason before any recipient
  EXPECT_TRUE(damaged("r4:HDRS", "r4:NONE"));             // RET neither FULL nor HDRS
  EXPECT_TRUE(damaged("r4:HDRS", "r4:HDRS\nr4:FULL"));    // RET twice
  EXPECT_TRUE(damaged("e8:QQ314159", "e0:"));             // empty ENVID
  EXPECT_TRUE(damaged("e8:QQ314159", "e1:a\ne1:b"));      // ENVID twice
  EXPECT_TRUE(damaged("y13:FAILURE,DELAY", "y13:FAILURE,NEVER"));
  EXPECT_TRUE(damaged("y13:FAILURE,DELAY", "y7:FAILURE\ny5:DELAY"));  // NOTIFY twice for one recipient
  EXPECT_TRUE(damaged("o24:rfc822;Bob@other.example", "o17:Bob@other.example"));  // no address type
  EXPECT_TRUE(damaged("o24:rfc822;Bob@other.example", "o7:rfc822;"));             // no address
  EXPECT_TRUE(damaged("C18:", "y5:NEVER\nC18:"));  // NOTIFY before any recipient
  EXPECT_FALSE(decode(std::string(kQueueFileMagic) + "I99999999999999999999:x\n").ok());
}

}  // namespace
}  // namespace postern::queue

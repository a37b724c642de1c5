#include "queue/dsn.hpp"

#include <gtest/gtest.h>

#include <map>

#include "base/calendar.hpp"
#include "base/strings.hpp"

namespace postern::queue {
namespace {

using namespace std::chrono_literals;
using smtp::proto::Ret;

// A small reader of what compose_dsn writes, independent of it: header fields (unfolded, names lower-cased),
// multipart bodies split at their boundary, delivery-status blocks.
struct Entity {
  std::multimap<std::string, std::string> fields;
  std::string body;

  std::string get(const std::string& name) const {
    auto it = fields.find(name);
    return it == fields.end() ? "" : it->second;
  }
  size_t count(const std::string& name) const { return fields.count(name); }
};

Entity parse_entity(std::string_view text) {
  Entity e;
  size_t end = text.find("\n\n");
  std::string_view head = text.substr(0, end == text.npos ? text.size() : end + 1);
  e.body = end == text.npos ? "" : std::string(text.substr(end + 2));
  std::string name, value;
  auto flush = [&] {
    if (!name.empty()) e.fields.emplace(to_lower(name), std::string(trim(value)));
    name.clear();
  };
  for (std::string_view line : split_lines(head)) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      value += " " + std::string(trim(line));
      continue;
    }
    flush();
    size_t colon = line.find(':');
    EXPECT_NE(colon, line.npos) << line;
    name = line.substr(0, colon);
    value = line.substr(colon + 1);
  }
  flush();
  return e;
}

std::string boundary_of(const Entity& e) {
  std::string ct = e.get("content-type");
  size_t at = ct.find("boundary=\"");
  EXPECT_NE(at, ct.npos) << ct;
  at += 10;
  return ct.substr(at, ct.find('"', at) - at);
}

std::vector<Entity> parts_of(const Entity& e) {
  std::string b = boundary_of(e);
  std::string_view body = e.body;
  std::vector<Entity> parts;
  size_t pos = body.find("--" + b + "\n");
  EXPECT_NE(pos, body.npos);
  pos += b.size() + 3;
  while (true) {
    size_t next = body.find("\n--" + b, pos);
    EXPECT_NE(next, body.npos);
    if (next == body.npos) break;
    parts.push_back(parse_entity(body.substr(pos, next + 1 - pos)));
    parts.back().body.pop_back();  // the LF before the delimiter belongs to it
    pos = next + 3 + b.size();
    if (body.substr(pos, 3) == "--\n") {
      EXPECT_EQ(pos + 3, body.size()) << "text after the closing delimiter";
      break;
    }
    EXPECT_EQ(body.substr(pos, 1), "\n");
    pos += 1;
  }
  return parts;
}

std::vector<Entity> status_blocks(std::string_view body) {
  std::vector<Entity> blocks;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == body.npos) end = body.size();
    blocks.push_back(parse_entity(std::string(body.substr(pos, end - pos)) + "\n"));
    pos = end + 2;
  }
  return blocks;
}

void expect_short_lines(std::string_view message) {
  for (std::string_view line : split(message, '\n')) EXPECT_LE(line.size(), 998u) << line.substr(0, 80);
}

const std::string kOriginal =
    "Received: from client.example\n\tby mx.example.test (Postern) with ESMTP id 65A1B2C3D4E5F6\n"
    "From: Alice <a@x.example>\nTo: b@elsewhere.example\nSubject: lunch\n\nAre you in?\n";

DsnInput failure() {
  DsnInput in;
  in.reporting_mta = "mx.example.test";
  in.queue_id = "65A1B2C3D4E5F6";
  in.arrival = std::chrono::system_clock::time_point(1700000000s);
  in.now = in.arrival + 3600s;
  in.sender = "a@x.example";
  in.envid = "QQ314159";
  DsnRecipient b;
  b.final_recipient = "b@elsewhere.example";
  b.original = smtp::proto::OriginalRecipient{"rfc822", "B@elsewhere.example"};
  b.status = "5.1.1";
  b.remote_mta = "mx.elsewhere.example";
  b.diagnostic = "smtp; 550 5.1.1 <b@elsewhere.example>: no such user";
  b.explanation =
      "host mx.elsewhere.example[192.0.2.7] said: 550 5.1.1 <b@elsewhere.example>: no such user (in reply to "
      "RCPT TO command)";
  b.last_attempt = in.now - 1s;
  DsnRecipient c;
  c.final_recipient = "c@elsewhere.example";
  c.status = "5.4.4";
  c.diagnostic = "X-Postern; Host or domain name not found";
  in.recipients = {b, c};
  return in;
}

TEST(Dsn, FailureReturnsTheWholeMessage) {
  DsnInput in = failure();
  std::string dsn = compose_dsn(in, kOriginal);
  expect_short_lines(dsn);
  Entity top = parse_entity(dsn);
  EXPECT_EQ(top.get("from"), "MAILER-DAEMON@mx.example.test (Mail Delivery System)");
  EXPECT_EQ(top.get("to"), "a@x.example");
  EXPECT_EQ(top.get("subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(top.get("auto-submitted"), "auto-replied");
  EXPECT_EQ(top.get("mime-version"), "1.0");
  EXPECT_TRUE(top.get("content-type").starts_with("multipart/report; report-type=delivery-status;"));
  EXPECT_EQ(top.get("content-transfer-encoding"), "7bit");
  EXPECT_EQ(top.get("message-id"), "<1700003600.65A1B2C3D4E5F6.F@mx.example.test>");
  EXPECT_EQ(top.get("date"), rfc5322_date(in.now));
  auto parts = parts_of(top);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].get("content-type"), "text/plain; charset=us-ascii");
  EXPECT_NE(parts[0].body.find("This is the mail system at host mx.example.test."), std::string::npos);
  EXPECT_NE(parts[0].body.find("<b@elsewhere.example> (expanded from <B@elsewhere.example>): host\n"
                               "    mx.elsewhere.example[192.0.2.7] said: 550 5.1.1"),
            std::string::npos)
      << parts[0].body;
  EXPECT_NE(parts[0].body.find("<c@elsewhere.example>: Host or domain name not found"), std::string::npos);
  EXPECT_EQ(parts[1].get("content-type"), "message/delivery-status");
  auto blocks = status_blocks(parts[1].body);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0].get("reporting-mta"), "dns; mx.example.test");
  EXPECT_EQ(blocks[0].get("x-postern-queue-id"), "65A1B2C3D4E5F6");
  EXPECT_EQ(blocks[0].get("original-envelope-id"), "QQ314159");
  EXPECT_EQ(blocks[0].get("arrival-date"), rfc5322_date(in.arrival));
  EXPECT_EQ(blocks[1].get("final-recipient"), "rfc822; b@elsewhere.example");
  EXPECT_EQ(blocks[1].get("original-recipient"), "rfc822;B@elsewhere.example");
  EXPECT_EQ(blocks[1].get("action"), "failed");
  EXPECT_EQ(blocks[1].get("status"), "5.1.1");
  EXPECT_EQ(blocks[1].get("remote-mta"), "dns; mx.elsewhere.example");
  EXPECT_EQ(blocks[1].get("diagnostic-code"), "smtp; 550 5.1.1 <b@elsewhere.example>: no such user");
  EXPECT_EQ(blocks[1].get("last-attempt-date"), rfc5322_date(in.now - 1s));
  EXPECT_EQ(blocks[1].count("will-retry-until"), 0u);
  EXPECT_EQ(blocks[2].get("final-recipient"), "rfc822; c@elsewhere.example");
  EXPECT_EQ(blocks[2].get("status"), "5.4.4");
  EXPECT_EQ(blocks[2].count("original-recipient") + blocks[2].count("remote-mta"), 0u);
  EXPECT_EQ(parts[2].get("content-type"), "message/rfc822");
  EXPECT_EQ(parts[2].get("content-description"), "Undelivered Message");
  EXPECT_EQ(parts[2].body, kOriginal);
}

TEST(Dsn, RetHdrsAndTheSizeLimitReturnTheHeaderOnly) {
  std::string header = kOriginal.substr(0, kOriginal.find("\n\n") + 1);
  for (int variant = 0; variant < 2; ++variant) {
    DsnInput in = failure();
    if (variant == 0) in.ret = Ret::kHdrs;
    if (variant == 1) in.size_limit = kOriginal.size() - 1;
    std::string dsn = compose_dsn(in, kOriginal);
    auto parts = parts_of(parse_entity(dsn));
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[2].get("content-type"), "text/rfc822-headers") << variant;
    EXPECT_EQ(parts[2].get("content-description"), "Undelivered Message Headers");
    EXPECT_EQ(parts[2].body, header) << variant;
    EXPECT_NE(parts[0].body.find("The header of the message is attached"), std::string::npos);
  }
  // RET=FULL within the limit: the whole message.
  DsnInput in = failure();
  in.ret = Ret::kFull;
  in.size_limit = kOriginal.size();
  EXPECT_EQ(parts_of(parse_entity(compose_dsn(in, kOriginal)))[2].body, kOriginal);
  // A header larger than the limit is cut after its last whole line within it.
  in.size_limit = 40;
  EXPECT_EQ(parts_of(parse_entity(compose_dsn(in, kOriginal)))[2].body, "Received: from client.example\n");
  in.size_limit = 0;
  EXPECT_EQ(parts_of(parse_entity(compose_dsn(in, kOriginal)))[2].body, "");
}

TEST(Dsn, DelayWarning) {
  DsnInput in = failure();
  in.recipients.resize(1);
  in.recipients[0].action = DsnAction::kDelayed;
  in.recipients[0].status = "4.4.1";
  in.recipients[0].diagnostic =
      "X-Postern; connect to mx.elsewhere.example[192.0.2.7]:25: Connection refused";
  in.recipients[0].explanation = "";
  in.recipients[0].will_retry_until = in.arrival + 5 * 24h;
  std::string dsn = compose_dsn(in, kOriginal);
  expect_short_lines(dsn);
  Entity top = parse_entity(dsn);
  EXPECT_EQ(top.get("subject"), "Delayed Mail (still being retried)");
  EXPECT_TRUE(top.get("message-id").find(".D@") != std::string::npos);
  auto parts = parts_of(top);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_NE(parts[0].body.find("THIS IS A WARNING ONLY"), std::string::npos);
  EXPECT_NE(parts[0].body.find("Delivery will be tried again until " + rfc5322_date(in.arrival + 5 * 24h)),
            std::string::npos);
  EXPECT_NE(parts[0].body.find("(expanded from <B@elsewhere.example>): connect to"), std::string::npos);
  auto blocks = status_blocks(parts[1].body);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[1].get("action"), "delayed");
  EXPECT_EQ(blocks[1].get("status"), "4.4.1");
  EXPECT_EQ(blocks[1].get("will-retry-until"), rfc5322_date(in.arrival + 5 * 24h));
  // Delay warnings never return the body, whatever RET says.
  EXPECT_EQ(parts[2].get("content-type"), "text/rfc822-headers");
  EXPECT_EQ(parts[2].get("content-description"), "Delayed Message Headers");
  EXPECT_EQ(parts[2].body.find("Are you in?"), std::string::npos);
}

TEST(Dsn, SuccessReport) {
  DsnInput in = failure();
  in.ret = Ret::kFull;
  in.envid.clear();
  DsnRecipient r;
  r.final_recipient = "bob@example.test";
  r.action = DsnAction::kDelivered;
  r.explanation = "delivered to mailbox";
  in.recipients = {r};
  std::string dsn = compose_dsn(in, kOriginal);
  Entity top = parse_entity(dsn);
  EXPECT_EQ(top.get("subject"), "Successful Mail Delivery Report");
  auto parts = parts_of(top);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_NE(parts[0].body.find("<bob@example.test>: delivered to mailbox"), std::string::npos);
  auto blocks = status_blocks(parts[1].body);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].count("original-envelope-id"), 0u);
  EXPECT_EQ(blocks[1].get("action"), "delivered");
  EXPECT_EQ(blocks[1].get("status"), "2.0.0");  // the class default
  EXPECT_EQ(blocks[1].count("diagnostic-code") + blocks[1].count("last-attempt-date"), 0u);
  EXPECT_EQ(parts[2].get("content-type"), "text/rfc822-headers");
  EXPECT_EQ(parts[2].get("content-description"), "Delivered Message Headers");
}

TEST(Dsn, HostileDiagnosticsStayInsideTheirFields) {
  DsnInput in = failure();
  in.recipients[0].diagnostic = "smtp; 550 caf\xc3\xa9\r\nX-Evil: 1\n\nFinal-Recipient: rfc822; evil@x " +
                                std::string(3000, 'y') + " " + std::string(50, 'z');
  in.recipients[0].explanation = in.recipients[0].diagnostic;
  in.recipients[0].remote_mta = "mx\n.evil";
  std::string dsn = compose_dsn(in, kOriginal);
  expect_short_lines(dsn);
  EXPECT_EQ(dsn.find("\nX-Evil"), std::string::npos);
  EXPECT_EQ(dsn.find('\r'), std::string::npos);
  EXPECT_EQ(dsn.find("caf\xc3\xa9"), std::string::npos);
  auto parts = parts_of(parse_entity(dsn));
  ASSERT_EQ(parts.size(), 3u);
  auto blocks = status_blocks(parts[1].body);
  ASSERT_EQ(blocks.size(), 3u);  // the injected blank line did not start a block
  EXPECT_EQ(blocks[1].count("final-recipient"), 1u);
  EXPECT_EQ(blocks[1].get("final-recipient"), "rfc822; b@elsewhere.example");
  EXPECT_EQ(blocks[1].get("remote-mta"), "dns; mx .evil");
  EXPECT_TRUE(blocks[1].get("diagnostic-code").starts_with("smtp; 550 caf??  X-Evil: 1  Final-Recipient"));
}

TEST(Dsn, BoundaryNeverOccursInTheMessageAnd8BitIsLabelled) {
  DsnInput in = failure();
  std::string first = boundary_of(parse_entity(compose_dsn(in, "Subject: x\n\nhi\n")));
  std::string hostile = "Subject: caf\xc3\xa9\n\n--" + first + "\n--" + first + "--\n";
  std::string dsn = compose_dsn(in, hostile);
  Entity top = parse_entity(dsn);
  EXPECT_NE(boundary_of(top), first);
  EXPECT_EQ(top.get("content-transfer-encoding"), "8bit");
  auto parts = parts_of(top);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].get("content-transfer-encoding"), "8bit");
  EXPECT_EQ(parts[2].body, hostile);
  // A message without a final line end still ends its part cleanly; one without a header returns nothing.
  EXPECT_EQ(parts_of(parse_entity(compose_dsn(in, "Subject: x\n\nno end")))[2].body,
            "Subject: x\n\nno end\n");
  in.ret = Ret::kHdrs;
  EXPECT_EQ(parts_of(parse_entity(compose_dsn(in, "\nbody only\n")))[2].body, "");
}

TEST(Dsn, WhoGetsOne) {
  using namespace smtp::proto;
  const auto F = DsnAction::kFailed, D = DsnAction::kDelayed, S = DsnAction::kDelivered;
  // No bounce for a bounce, whatever was asked.
  for (auto a : {F, D, S, DsnAction::kRelayed, DsnAction::kExpanded})
    for (uint8_t n : {0, 2, 4, 8, 14}) EXPECT_FALSE(wants_dsn("", n, a, true));
  // NOTIFY absent: failures; delays when warnings are on; never success.
  EXPECT_TRUE(wants_dsn("a@x", 0, F, false));
  EXPECT_FALSE(wants_dsn("a@x", 0, D, false));
  EXPECT_TRUE(wants_dsn("a@x", 0, D, true));
  EXPECT_FALSE(wants_dsn("a@x", 0, S, true));
  // NEVER: nothing.
  for (auto a : {F, D, S}) EXPECT_FALSE(wants_dsn("a@x", kNotifyNever, a, true));
  // Otherwise exactly what was asked.
  EXPECT_TRUE(wants_dsn("a@x", kNotifyFailure, F, false));
  EXPECT_FALSE(wants_dsn("a@x", kNotifyFailure, D, true));
  EXPECT_FALSE(wants_dsn("a@x", kNotifyFailure, S, true));
  EXPECT_FALSE(wants_dsn("a@x", kNotifySuccess, F, true));
  EXPECT_TRUE(wants_dsn("a@x", kNotifySuccess, S, false));
  EXPECT_TRUE(wants_dsn("a@x", kNotifySuccess, DsnAction::kRelayed, false));
  EXPECT_TRUE(wants_dsn("a@x", kNotifySuccess, DsnAction::kExpanded, false));
  EXPECT_TRUE(wants_dsn("a@x", kNotifyDelay, D, false));
  EXPECT_FALSE(wants_dsn("a@x", kNotifyDelay, F, true));
  EXPECT_TRUE(wants_dsn("a@x", kNotifySuccess | kNotifyFailure | kNotifyDelay, D, false));
}

}  // namespace
}  // namespace postern::queue

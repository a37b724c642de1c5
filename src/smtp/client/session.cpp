#include "smtp/client/session.hpp"

#include <fmt/format.h>

#include "auth/sasl/base64.hpp"

namespace postern::smtp::client {
namespace {

constexpr size_t kAllMessages = static_cast<size_t>(-1);

Fate fate_of(int code) {
  return code >= 500 && code <= 599 ? Fate::kBounced : Fate::kDeferred;
}

bool positive(const proto::Reply& r) {
  return r.code >= 200 && r.code <= 299;
}

std::string joined(const proto::Reply& r) {
  std::string out;
  for (const std::string& line : r.lines) {
    if (!out.empty()) out += ' ';
    out += line;
  }
  return out;
}

// What goes into a command line must not end it early (queue files are ours, but a line break would turn
// an address into a second command).
bool unsafe(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool unsafe_message(const Message& m) {
  if (unsafe(m.sender) || unsafe(m.envid) || unsafe(m.ret)) return true;
  for (const Recipient& r : m.recipients) {
    if (unsafe(r.address) || unsafe(r.notify) || unsafe(r.orcpt)) return true;
  }
  return false;
}

}  // namespace

std::string xtext(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 33 && c <= 126 && c != '+' && c != '=') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("+{:02X}", c);
    }
  }
  return out;
}

std::string_view stage_name(Stage stage) {
  switch (stage) {
    case Stage::kConnect:
      return "connect";
    case Stage::kGreeting:
      return "greeting";
    case Stage::kHelo:
      return "EHLO/HELO";
    case Stage::kStartTls:
      return "STARTTLS";
    case Stage::kAuth:
      return "AUTH";
    case Stage::kMail:
      return "MAIL FROM";
    case Stage::kRcpt:
      return "RCPT TO";
    case Stage::kData:
      return "DATA";
    case Stage::kDataDone:
      return "end of data";
    case Stage::kQuit:
      return "QUIT";
  }
  return "?";
}

std::string_view timeout_parameter(Timeout timeout) {
  switch (timeout) {
    case Timeout::kConnect:
      return "smtp_connect_timeout";
    case Timeout::kHelo:
    case Timeout::kAuth:
      return "smtp_helo_timeout";
    case Timeout::kStartTls:
      return "smtp_starttls_timeout";
    case Timeout::kMail:
      return "smtp_mail_timeout";
    case Timeout::kRcpt:
      return "smtp_rcpt_timeout";
    case Timeout::kDataInit:
      return "smtp_data_init_timeout";
    case Timeout::kDataXfer:
      return "smtp_data_xfer_timeout";
    case Timeout::kDataDone:
      return "smtp_data_done_timeout";
    case Timeout::kQuit:
      return "smtp_quit_timeout";
  }
  return "smtp_helo_timeout";
}

Session::Session(Policy policy, std::vector<Message> messages)
    : policy_(std::move(policy)), messages_(std::move(messages)), parser_(policy_.limits) {
  for (const Message& m : messages_) outcomes_.emplace_back(m.recipients.size());
}

Session::Session(Policy policy, std::vector<Message> messages, Resume resume)
    : Session(std::move(policy), std::move(messages)) {
  phase_ = Phase::kResume;
  caps_ = std::move(resume.caps);
  tls_active_ = resume.tls_active;
  auth_done_ = resume.auth_done;
}

Step Session::start() const {
  if (phase_ == Phase::kResume) return Step{"RSET\r\n", Next::kRead, Timeout::kMail};
  return Step{{}, Next::kRead, Timeout::kHelo};
}

Step Session::received(std::string_view bytes) {
  if (phase_ == Phase::kDone || phase_ == Phase::kIdle) return close();
  parser_.append(bytes);
  for (;;) {
    auto r = parser_.next();
    if (!r) return waiting();
    if (!r->ok()) return protocol_error(r->error().message);
    Step step = on_reply(**r);
    if (step.next == Next::kRead && step.send.empty()) continue;  // more replies of a pipelined group due
    // Replies to commands not yet sent: a broken or hostile server; trusting them would misattribute them.
    if (step.next != Next::kClose && !parser_.empty())
      return protocol_error("reply data ahead of the command");
    return step;
  }
}

Step Session::on_reply(const proto::Reply& reply) {
  switch (phase_) {
    case Phase::kGreeting:
      return on_greeting(reply);
    case Phase::kResume:
      return on_resume(reply);
    case Phase::kEhlo:
    case Phase::kHelo:
      return on_ehlo(reply);
    case Phase::kStartTls:
      return on_starttls(reply);
    case Phase::kAuth:
      return on_auth(reply);
    case Phase::kTransaction:
      return on_transaction(reply);
    case Phase::kQuit:
    case Phase::kIdle:
    case Phase::kDone:
      break;
  }
  return close();
}

Step Session::on_greeting(const proto::Reply& reply) {
  if (!positive(reply)) return fail_session(reply, Stage::kGreeting);
  phase_ = Phase::kEhlo;
  return Step{"EHLO " + policy_.helo_name + "\r\n", Next::kRead, Timeout::kHelo};
}

Step Session::on_resume(const proto::Reply& reply) {
  if (reply.code == 250) return next_message();
  fail_open(kAllMessages, Fate::kDeferred, Stage::kConnect, &reply, {}, {});
  return reply.code == 421 ? close() : quit();
}

Step Session::on_ehlo(const proto::Reply& reply) {
  if (positive(reply)) {
    caps_ = phase_ == Phase::kEhlo ? Capabilities::from_ehlo(reply) : Capabilities();
    return after_hello();
  }
  if (phase_ == Phase::kEhlo && reply.code >= 500 && reply.code <= 599) {
    phase_ = Phase::kHelo;
    return Step{"HELO " + policy_.helo_name + "\r\n", Next::kRead, Timeout::kHelo};
  }
  return fail_session(reply, Stage::kHelo);
}

Step Session::after_hello() {
  if (!tls_active_ && policy_.tls != TlsPolicy::kNone && caps_.starttls) {
    phase_ = Phase::kStartTls;
    return Step{"STARTTLS\r\n", Next::kRead, Timeout::kStartTls};
  }
  if (!tls_active_ && policy_.tls == TlsPolicy::kEncrypt) {
    fail_open(kAllMessages, Fate::kDeferred, Stage::kStartTls, nullptr, "4.7.4",
              "TLS is required, but was not offered by the server");
    return quit();
  }
  if (policy_.credentials && !auth_done_ && !caps_.auth.empty()) return start_auth();
  return next_message();
}

Step Session::on_starttls(const proto::Reply& reply) {
  if (reply.code == 220) {
    parser_.clear();  // whatever came with the 220 was sent in the clear: not part of the TLS session
    return Step{{}, Next::kStartTls, Timeout::kStartTls};
  }
  if (reply.code == 421 || policy_.tls == TlsPolicy::kEncrypt) {
    fail_open(kAllMessages, Fate::kDeferred, Stage::kStartTls, &reply, {}, {});
    return reply.code == 421 ? close() : quit();
  }
  caps_.starttls = false;  // tls = may: go on in the clear
  return after_hello();
}

Step Session::tls_done(bool ok, std::string_view why) {
  if (!ok) {
    fail_open(kAllMessages, Fate::kDeferred, Stage::kStartTls, nullptr, "4.7.5", why);
    return close();
  }
  tls_active_ = true;
  caps_ = Capabilities();  // RFC 3207 4.2: forget what was learned before TLS
  phase_ = Phase::kEhlo;
  return Step{"EHLO " + policy_.helo_name + "\r\n", Next::kRead, Timeout::kHelo};
}

Step Session::start_auth() {
  const Credentials& c = *policy_.credentials;
  bool allowed = tls_active_ || policy_.plaintext_auth_without_tls;
  if (allowed && (caps_.has_auth("PLAIN") || caps_.has_auth("LOGIN"))) {
    phase_ = Phase::kAuth;
    auth_step_ = 0;
    auth_login_ = !caps_.has_auth("PLAIN");
    if (auth_login_) return Step{"AUTH LOGIN\r\n", Next::kRead, Timeout::kAuth};
    std::string plain = std::string(1, '\0') + c.user + std::string(1, '\0') + c.password;
    return Step{"AUTH PLAIN " + auth::sasl::base64_encode(plain) + "\r\n", Next::kRead, Timeout::kAuth};
  }
  fail_open(kAllMessages, Fate::kDeferred, Stage::kAuth, nullptr, "4.7.0",
            allowed ? "SASL authentication failed: the server offers neither PLAIN nor LOGIN"
                    : "SASL authentication failed: PLAIN and LOGIN are used only over TLS");
  return quit();
}

Step Session::on_auth(const proto::Reply& reply) {
  if (reply.code == 235) {
    auth_done_ = true;
    return next_message();
  }
  if (reply.code == 334 && auth_login_ && auth_step_ < 2) {
    const Credentials& c = *policy_.credentials;
    ++auth_step_;
    std::string answer = auth::sasl::base64_encode(auth_step_ == 1 ? c.user : c.password);
    return Step{answer + "\r\n", Next::kRead, Timeout::kAuth};
  }
  // Soft bounce, as Postfix's smtp_sasl_auth_soft_bounce: wrong credentials are fixed by the administrator.
  fail_open(kAllMessages, Fate::kDeferred, Stage::kAuth, &reply, {}, {});
  return reply.code == 421 ? close() : quit();
}

Step Session::next_message() {
  phase_ = Phase::kTransaction;
  for (; msg_ < messages_.size(); ++msg_) {
    const Message& m = messages_[msg_];
    if (m.recipients.empty()) continue;
    if (unsafe_message(m)) {
      fail_open(msg_, Fate::kBounced, Stage::kMail, nullptr, "5.1.3",
                "an address or DSN parameter contains a line break");
    } else if (caps_.size && caps_.size_limit > 0 && m.content.size() > caps_.size_limit) {
      fail_open(msg_, Fate::kBounced, Stage::kMail, nullptr, "5.3.4",
                fmt::format("message size {} exceeds size limit {} of the server", m.content.size(),
                            caps_.size_limit));
    } else if (m.smtputf8 && !caps_.smtputf8) {
      fail_open(msg_, Fate::kBounced, Stage::kMail, nullptr, "5.6.7",
                "SMTPUTF8 is required, but was not offered by the server");
    } else if (m.requiretls && !(tls_active_ && caps_.requiretls)) {
      fail_open(msg_, Fate::kDeferred, Stage::kMail, nullptr, "5.7.30", "REQUIRETLS support required");
    } else {
      break;
    }
  }
  if (msg_ >= messages_.size()) {
    if (!policy_.keep_open) return quit();
    phase_ = Phase::kIdle;
    expect_.clear();
    return Step{{}, Next::kClose, Timeout::kQuit};
  }
  mail_ok_ = false;
  next_rcpt_ = 0;
  accepted_.clear();
  expect_.clear();
  if (!rset_needed_) return send_mail();
  rset_needed_ = false;
  expect_.push_back({Expect::kRset});
  if (!caps_.pipelining) return Step{"RSET\r\n", Next::kRead, Timeout::kMail};
  Step step = send_mail();
  step.send.insert(0, "RSET\r\n");
  return step;
}

Step Session::send_mail() {
  const Message& m = messages_[msg_];
  std::string send = "MAIL FROM:<" + m.sender + ">";
  if (caps_.size) send += fmt::format(" SIZE={}", m.content.size());
  if (m.eight_bit && caps_.eight_bit_mime) send += " BODY=8BITMIME";
  if (m.smtputf8) send += " SMTPUTF8";
  if (caps_.dsn && !m.ret.empty()) send += " RET=" + m.ret;
  if (caps_.dsn && !m.envid.empty()) send += " ENVID=" + xtext(m.envid);
  if (m.requiretls) send += " REQUIRETLS";
  send += "\r\n";
  expect_.push_back({Expect::kMail});
  if (!caps_.pipelining) return Step{std::move(send), Next::kRead, timeout_now()};
  // RFC 2920 3.1: MAIL, every RCPT and DATA in one group; BDAT waits for the RCPT replies.
  while (next_rcpt_ < m.recipients.size()) send += send_rcpt_or_data().send;
  if (!caps_.chunking) {
    send += "DATA\r\n";
    expect_.push_back({Expect::kData});
  }
  return Step{std::move(send), Next::kRead, timeout_now()};
}

Step Session::send_rcpt_or_data() {
  const Message& m = messages_[msg_];
  if (next_rcpt_ < m.recipients.size()) {
    const Recipient& r = m.recipients[next_rcpt_];
    std::string send = "RCPT TO:<" + r.address + ">";
    if (caps_.dsn && !r.notify.empty()) send += " NOTIFY=" + r.notify;
    if (caps_.dsn && !r.orcpt.empty()) {
      size_t semi = r.orcpt.find(';');
      send += semi == std::string::npos
                  ? " ORCPT=rfc822;" + xtext(r.orcpt)
                  : " ORCPT=" + r.orcpt.substr(0, semi + 1) + xtext(r.orcpt.substr(semi + 1));
    }
    send += "\r\n";
    expect_.push_back({Expect::kRcpt, next_rcpt_++});
    return Step{std::move(send), Next::kRead, Timeout::kRcpt};
  }
  if (accepted_.empty()) return finish_message(true);
  if (caps_.chunking) {
    body_.emplace(m.content, BodyEncoder::Mode::kBdat);
    return Step{fmt::format("BDAT {} LAST\r\n", BodyEncoder::bdat_size(m.content)), Next::kSendBody,
                Timeout::kDataXfer};
  }
  expect_.push_back({Expect::kData});
  return Step{"DATA\r\n", Next::kRead, Timeout::kDataInit};
}

Step Session::body_sent() {
  if (!body_) return close();
  body_.reset();
  expect_.push_back({Expect::kEnd});
  return waiting();
}

Step Session::on_transaction(const proto::Reply& reply) {
  if (expect_.empty()) return protocol_error("a reply to no command");
  Pending p = expect_.front();
  expect_.pop_front();
  std::vector<Outcome>& outs = outcomes_[msg_];
  Stage stage = Stage::kMail;
  switch (p.what) {
    case Expect::kRset:
    case Expect::kIgnored:
      break;
    case Expect::kMail:
      mail_ok_ = positive(reply);
      if (!mail_ok_) fail_open(msg_, fate_of(reply.code), Stage::kMail, &reply, {}, {});
      break;
    case Expect::kRcpt:
      stage = Stage::kRcpt;
      if (!mail_ok_) break;  // a pipelined reply after a refused MAIL: the recipient already failed
      if (positive(reply)) {
        accepted_.push_back(p.rcpt);
      } else {
        settle(outs[p.rcpt], fate_of(reply.code), Stage::kRcpt, &reply, {}, {});
      }
      break;
    case Expect::kData:
      stage = Stage::kData;
      if (reply.code == 354) {
        if (mail_ok_ && !accepted_.empty()) {
          body_.emplace(messages_[msg_].content, BodyEncoder::Mode::kData);
          return Step{{}, Next::kSendBody, Timeout::kDataXfer};
        }
        // RFC 2920 3.1: DATA accepted with no recipient: send an empty message, whatever the answer.
        expect_.push_back({Expect::kIgnored});
        return Step{".\r\n", Next::kRead, Timeout::kDataDone};
      }
      for (size_t i : accepted_) settle(outs[i], fate_of(reply.code), Stage::kData, &reply, {}, {});
      break;
    case Expect::kEnd:
      stage = Stage::kDataDone;
      for (size_t i : accepted_) {
        settle(outs[i], positive(reply) ? Fate::kDelivered : fate_of(reply.code), Stage::kDataDone, &reply,
               {}, {});
      }
      break;
  }
  if (reply.code == 421) {  // the server is closing the connection
    fail_open(kAllMessages, Fate::kDeferred, stage, &reply, {}, {});
    return close();
  }
  if (!expect_.empty()) return waiting();
  switch (p.what) {
    case Expect::kEnd:
      return finish_message(false);
    case Expect::kIgnored:
    case Expect::kData:
      return finish_message(mail_ok_);
    case Expect::kRset:
      return send_mail();
    case Expect::kMail:
    case Expect::kRcpt:
      break;
  }
  if (!mail_ok_) return finish_message(false);  // MAIL refused: no transaction open
  return send_rcpt_or_data();
}

Step Session::finish_message(bool need_rset) {
  rset_needed_ = need_rset;
  ++msg_;
  return next_message();
}

Step Session::quit() {
  phase_ = Phase::kQuit;
  expect_.clear();
  return Step{"QUIT\r\n", Next::kRead, Timeout::kQuit};
}

Step Session::close() {
  phase_ = Phase::kDone;
  expect_.clear();
  body_.reset();
  return Step{{}, Next::kClose, Timeout::kQuit};
}

Step Session::connection_lost(std::string_view why) {
  if (phase_ != Phase::kQuit && phase_ != Phase::kDone) {
    fail_open(kAllMessages, Fate::kDeferred, current_stage(), nullptr, "4.4.2", why);
  }
  return close();
}

Step Session::fail_session(const proto::Reply& reply, Stage stage) {
  fail_open(kAllMessages, fate_of(reply.code), stage, &reply, {}, {});
  return reply.code == 421 ? close() : quit();
}

Step Session::protocol_error(std::string_view what) {
  fail_open(kAllMessages, Fate::kDeferred, current_stage(), nullptr, "4.5.0",
            "protocol error: " + std::string(what));
  return close();
}

void Session::fail_open(size_t m, Fate fate, Stage stage, const proto::Reply* reply,
                        std::string_view enhanced, std::string_view text) {
  for (size_t i = 0; i < outcomes_.size(); ++i) {
    if (m != kAllMessages && i != m) continue;
    for (Outcome& o : outcomes_[i]) {
      if (o.fate == Fate::kPending) settle(o, fate, stage, reply, enhanced, text);
    }
  }
}

void Session::settle(Outcome& o, Fate fate, Stage stage, const proto::Reply* reply, std::string_view enhanced,
                     std::string_view text) {
  o.fate = fate;
  o.stage = stage;
  o.code = reply ? reply->code : 0;
  o.enhanced = reply ? reply->enhanced : std::string(enhanced);
  o.text = reply ? joined(*reply) : std::string(text);
}

Timeout Session::timeout_now() const {
  switch (phase_) {
    case Phase::kGreeting:
    case Phase::kEhlo:
    case Phase::kHelo:
      return Timeout::kHelo;
    case Phase::kStartTls:
      return Timeout::kStartTls;
    case Phase::kAuth:
      return Timeout::kAuth;
    case Phase::kResume:
      return Timeout::kMail;
    case Phase::kQuit:
    case Phase::kIdle:
    case Phase::kDone:
      return Timeout::kQuit;
    case Phase::kTransaction:
      break;
  }
  if (body_) return Timeout::kDataXfer;
  if (expect_.empty()) return Timeout::kMail;
  switch (expect_.front().what) {
    case Expect::kRset:
    case Expect::kMail:
      return Timeout::kMail;
    case Expect::kRcpt:
      return Timeout::kRcpt;
    case Expect::kData:
      return Timeout::kDataInit;
    case Expect::kEnd:
    case Expect::kIgnored:
      return Timeout::kDataDone;
  }
  return Timeout::kMail;
}

Stage Session::current_stage() const {
  if (phase_ == Phase::kResume) return Stage::kConnect;  // the cached connection is gone: connect again
  switch (timeout_now()) {
    case Timeout::kConnect:
      return Stage::kConnect;
    case Timeout::kHelo:
      return phase_ == Phase::kGreeting ? Stage::kGreeting : Stage::kHelo;
    case Timeout::kStartTls:
      return Stage::kStartTls;
    case Timeout::kAuth:
      return Stage::kAuth;
    case Timeout::kMail:
      return Stage::kMail;
    case Timeout::kRcpt:
      return Stage::kRcpt;
    case Timeout::kDataInit:
    case Timeout::kDataXfer:
      return Stage::kData;
    case Timeout::kDataDone:
      return Stage::kDataDone;
    case Timeout::kQuit:
      return Stage::kQuit;
  }
  return Stage::kConnect;
}

Step Session::waiting() const {
  return Step{{}, Next::kRead, timeout_now()};
}

}  // namespace postern::smtp::client

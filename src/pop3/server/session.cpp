#include "pop3/server/session.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/log.hpp"
#include "base/strings.hpp"
#include "mime/headers.hpp"
#include "pop3/proto/command.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::pop3::server {

namespace md = store::maildir;

namespace {

// The maildrop lock of RFC 1939 4: an flock on postern-pop3.lock in the Maildir, held while the session is
// in the TRANSACTION state. It holds between processes too (system users' sessions run in processes of
// their own) and goes away with a crashed session. The descriptor, -1 when the lock is taken elsewhere, or
// -2 when the file cannot be opened.
int lock_maildrop(const std::string& maildir) {
  int fd = ::open((maildir + "/postern-pop3.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -2;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

Settings Settings::from_config(const config::Config& config, bool tls_available) {
  Settings s;
  s.hostname = config.get("myhostname");
  s.sasl = auth::sasl_options(config, "pop3");
  s.starttls = tls_available && config.get("ssl") != "no";
  return s;
}

Session::Session(Settings settings, std::string client_ip, auth::sasl::Credentials& credentials, Login login)
    : settings_(std::move(settings)),
      ip_(std::move(client_ip)),
      credentials_(credentials),
      login_(std::move(login)) {}

void Session::set_tls(const tls::Info& info) {
  tls_ = info;
  pending_user_.clear();
}

Session::~Session() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string Session::greeting() const {
  return "+OK Postern POP3 ready.\r\n";
}

std::string Session::summary() const {
  return fmt::format("top={}, retr={}, del={}/{}", tops_, retrieved_, deleted_, messages_.size());
}

Next Session::err(std::string_view text, std::string& out) {
  out += fmt::format("-ERR {}\r\n", text);
  if (++errors_ >= settings_.max_bad_commands) {
    out += "-ERR Too many bad commands.\r\n";
    return Next::kClose;
  }
  return Next::kCommand;
}

Next Session::line_too_long(std::string& out) {
  return err("Command line too long.", out);
}

Next Session::login(const auth::sasl::Verdict& verdict, std::string_view method, std::string& out) {
  if (verdict.kind == auth::sasl::Verdict::Kind::kUnavailable) {
    log::warning("pop3-login", "authentication temporarily failed (password database): method={}, rip={}",
                 method, ip_);
    return err("[SYS/TEMP] Temporary authentication failure.", out);
  }
  auto account = verdict.ok() ? login_(verdict.user) : std::nullopt;
  if (!account) {
    ++auth_failures_;
    log::info("pop3-login", "authentication failed: method={}, rip={}", method, ip_);
    return err("[AUTH] Authentication failed.", out);
  }
  log::info("pop3-login", "Login: user=<{}>, method={}, rip={}", account->user, method, ip_);
  if (!account->session_token.empty()) {
    user_ = account->user;
    account_ = std::move(account);
    return Next::kHandoff;
  }
  return open_maildrop(std::move(*account), out);
}

Next Session::resume_login(auth::Account account, std::string& out) {
  return open_maildrop(std::move(account), out);
}

Next Session::open_maildrop(auth::Account acc, std::string& out) {
  std::optional<auth::Account> account = std::move(acc);
  int lock = -2;
  auto unavailable = [&](const std::string& why) {
    log::error("pop3", "user={}: {}", account->user, why);
    if (lock >= 0) ::close(lock);
    return err("[SYS/TEMP] Mailbox is not available, try again later.", out);
  };
  if (auto made = md::make_maildir(account->maildir, account->owner); !made)
    return unavailable(made.error().message);
  lock = lock_maildrop(account->maildir);
  if (lock == -1) {
    log::info("pop3-login", "user=<{}>, rip={}: maildrop in use", account->user, ip_);
    return err("[IN-USE] Mailbox is locked by another POP3 session.", out);
  }
  if (lock < 0)
    return unavailable(fmt::format("{}/postern-pop3.lock: {}", account->maildir, std::strerror(errno)));
  auto mb = md::Mailbox::open(account->maildir, account->owner, true);
  if (!mb) return unavailable(mb.error().message);
  if (auto st = (*mb)->sync(); !st.ok()) return unavailable(st.detail);
  user_ = account->user;
  lock_fd_ = lock;
  mailbox_ = *mb;
  account_ = std::move(account);
  mailbox_->count_vsizes();  // LIST and STAT show every size
  auto snap = mailbox_->snapshot();
  uidvalidity_ = snap->uidvalidity;
  messages_.reserve(snap->messages.size());
  for (const auto& m : snap->messages) messages_.push_back({m.uid, md::rfc822_size(m)});
  out += "+OK Logged in.\r\n";
  return Next::kCommand;
}

Session::Message* Session::message(std::string_view arg, std::string& out) {
  unsigned n = proto::parse_msg_number(arg);
  if (n == 0 || n > messages_.size()) {
    err("There's no message " + printable(arg, 20) + ".", out);
    return nullptr;
  }
  Message& m = messages_[n - 1];
  if (m.deleted) {
    err("Message is deleted.", out);
    return nullptr;
  }
  return &m;
}

void Session::send_message(uint32_t uid, long long body_lines, std::string& out) {
  auto content = mailbox_->read(uid);
  if (!content) {
    out += "-ERR [SYS/TEMP] The message was removed meanwhile.\r\n";
    return;
  }
  out += "+OK\r\n";
  std::string_view text = *content;
  size_t body = std::string_view::npos;
  if (body_lines >= 0) {
    // TOP: the header, the blank line, then body_lines lines of the body.
    mime::parse_header(text, &body);
  }
  long long lines_in_body = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (body != std::string_view::npos && pos >= body && lines_in_body++ >= body_lines) break;
    size_t lf = text.find('\n', pos);
    size_t end = lf == std::string_view::npos ? text.size() : lf;
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && line[0] == '.') out += '.';  // byte-stuffing (RFC 1939 3)
    out += line;
    out += "\r\n";
    pos = lf == std::string_view::npos ? text.size() : lf + 1;
  }
  out += ".\r\n";
}

Next Session::update(std::string& out) {
  std::vector<uint32_t> gone, seen;
  for (const auto& m : messages_) {
    if (m.deleted)
      gone.push_back(m.uid);
    else if (m.retrieved)
      seen.push_back(m.uid);
  }
  bool failed = false;
  if (!seen.empty() && !mailbox_->store(seen, md::FlagOp::kAdd, md::kSeen, {}, 0).ok()) failed = true;
  if (!gone.empty() && !mailbox_->expunge(gone).ok()) failed = true;
  if (failed) {
    out += "-ERR [SYS/TEMP] Some deleted messages were not removed.\r\n";
  } else {
    out += fmt::format("+OK Logging out, messages deleted: {}.\r\n", gone.size());
  }
  // The maildrop is free before the client reads the answer and perhaps logs in again.
  ::close(lock_fd_);
  lock_fd_ = -1;
  return Next::kClose;
}

bool Session::may_block(std::string_view line) const {
  proto::Command c;
  if (!account_) return true;
  if (!proto::parse_command(line, c)) return false;
  if (c.verb == "QUIT") return true;
  if ((c.verb != "RETR" && c.verb != "TOP") || c.args.empty()) return false;
  // Reading and byte-stuffing a big message takes milliseconds, which other connections on the thread
  // would wait for.
  constexpr uint64_t kBigMessage = 1 << 20;
  unsigned n = proto::parse_msg_number(c.args[0]);
  return n != 0 && n <= messages_.size() && messages_[n - 1].size > kBigMessage;
}

Next Session::command(std::string_view line, std::string& out) {
  proto::Command c;
  if (!proto::parse_command(line, c)) return err("Unknown command.", out);
  const auto& a = c.args;
  if (c.verb == "CAPA") {
    out += "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
    if (!account_ && settings_.starttls && !tls_.active) out += "STLS\r\n";
    if (!account_) {
      auto opts = sasl_options();
      if (opts.allowed && opts.plaintext_allowed) out += "USER\r\n";
      std::string mechanisms;
      for (const auto& m : auth::sasl::offered_mechanisms(opts)) mechanisms += " " + m;
      if (!mechanisms.empty()) out += "SASL" + mechanisms + "\r\n";
    }
    out += "IMPLEMENTATION Postern\r\n.\r\n";
    return Next::kCommand;
  }
  if (c.verb == "QUIT") {
    if (account_) return update(out);
    out += "+OK Logging out.\r\n";
    return Next::kClose;
  }
  if (c.verb == "NOOP" && account_) {
    out += "+OK\r\n";
    return Next::kCommand;
  }
  if (!account_) {
    if (c.verb == "USER") {
      if (a.size() != 1) return err("USER needs one argument.", out);
      auto opts = sasl_options();
      if (!opts.allowed || !opts.plaintext_allowed)
        return err("[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", out);
      pending_user_ = a[0];
      out += "+OK\r\n";
      return Next::kCommand;
    }
    if (c.verb == "PASS") {
      if (pending_user_.empty()) return err("No username given.", out);
      std::string user = std::move(pending_user_);
      pending_user_.clear();
      auth::sasl::Secret password(a.empty() ? std::string() : a[0]);
      failed_login_ = user;
      return login(credentials_.verify(user, password.view()), "USER", out);
    }
    if (c.verb == "AUTH") {
      if (a.empty()) {
        out += "+OK\r\n";
        for (const auto& m : auth::sasl::offered_mechanisms(sasl_options())) out += m + "\r\n";
        out += ".\r\n";
        return Next::kCommand;
      }
      if (a.size() > 2) return err("AUTH takes a mechanism and an initial response.", out);
      sasl_ = std::make_unique<auth::sasl::Exchange>(sasl_options(), credentials_);
      return sasl_outcome(a.size() == 2 ? sasl_->start(a[0], a[1]) : sasl_->start(a[0]), out);
    }
    if (c.verb == "APOP") return err("APOP is not supported.", out);
    if (c.verb == "STLS") {
      if (tls_.active) return err("TLS is already active.", out);
      if (!settings_.starttls) return err("TLS support isn't enabled.", out);
      out += "+OK Begin TLS negotiation now.\r\n";
      return Next::kStartTls;
    }
    return err("Unknown command or not logged in.", out);
  }
  if (c.verb == "STAT") {
    size_t n = 0;
    uint64_t bytes = 0;
    for (const auto& m : messages_)
      if (!m.deleted) {
        ++n;
        bytes += m.size;
      }
    out += fmt::format("+OK {} {}\r\n", n, bytes);
    return Next::kCommand;
  }
  if (c.verb == "LIST" || c.verb == "UIDL") {
    bool uidl = c.verb == "UIDL";
    auto value = [&](const Message& m) {
      // Dovecot's default pop3_uidl_format %08Xu%08Xv, which it prints in lower case.
      return uidl ? fmt::format("{:08x}{:08x}", m.uid, uidvalidity_) : fmt::format("{}", m.size);
    };
    if (a.size() > 1) return err("Too many arguments.", out);
    if (a.size() == 1) {
      Message* m = message(a[0], out);
      if (!m) return errors_ >= settings_.max_bad_commands ? Next::kClose : Next::kCommand;
      out += fmt::format("+OK {} {}\r\n", m - messages_.data() + 1, value(*m));
      return Next::kCommand;
    }
    out += "+OK\r\n";
    for (size_t i = 0; i < messages_.size(); ++i)
      if (!messages_[i].deleted) out += fmt::format("{} {}\r\n", i + 1, value(messages_[i]));
    out += ".\r\n";
    return Next::kCommand;
  }
  if (c.verb == "RETR" || c.verb == "TOP" || c.verb == "DELE") {
    size_t want = c.verb == "TOP" ? 2 : 1;
    if (a.size() != want) return err(fmt::format("{} needs {} argument(s).", c.verb, want), out);
    long long lines = -1;
    if (c.verb == "TOP") {
      unsigned long long l = 0;
      if (!parse_u64(a[1], l) || l > 0x7fffffffULL) return err("Invalid number of lines.", out);
      lines = static_cast<long long>(l);
    }
    Message* m = message(a[0], out);
    if (!m) return errors_ >= settings_.max_bad_commands ? Next::kClose : Next::kCommand;
    if (c.verb == "DELE") {
      m->deleted = true;
      ++deleted_;
      out += "+OK Marked to be deleted.\r\n";
      return Next::kCommand;
    }
    if (c.verb == "RETR") {
      m->retrieved = true;
      ++retrieved_;
    } else {
      ++tops_;
    }
    send_message(m->uid, lines, out);
    return Next::kCommand;
  }
  if (c.verb == "RSET") {
    for (auto& m : messages_) m.deleted = false;
    deleted_ = 0;
    out += "+OK\r\n";
    return Next::kCommand;
  }
  return err("Unknown command.", out);
}

Next Session::auth_line(std::string_view line, std::string& out) {
  return sasl_outcome(sasl_->respond(line), out);
}

Next Session::sasl_outcome(auth::sasl::Outcome outcome, std::string& out) {
  using auth::sasl::Outcome;
  switch (outcome) {
    case Outcome::kChallenge:
      out += "+ " + sasl_->challenge() + "\r\n";
      return Next::kAuthenticate;
    case Outcome::kSuccess:
      return login(auth::sasl::Verdict::accepted(sasl_->user()), sasl_->mechanism(), out);
    case Outcome::kFailed:
      failed_login_ = sasl_->attempted();
      return login(auth::sasl::Verdict::rejected(), sasl_->mechanism(), out);
    case Outcome::kUnavailable:
      return login(auth::sasl::Verdict::unavailable(), sasl_->mechanism(), out);
    case Outcome::kAuthzFailed:
      return err("[AUTH] Authorization identity differs from the login.", out);
    case Outcome::kCancelled:
      return err("Authentication aborted.", out);
    case Outcome::kBadBase64:
      return err("Invalid base64 data in continued response.", out);
    case Outcome::kUnknownMechanism:
      return err("Unsupported authentication mechanism.", out);
    case Outcome::kPrivacyRequired:
      break;
  }
  return err("[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", out);
}

}  // namespace postern::pop3::server

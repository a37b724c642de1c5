// cli/sendmail.cpp: `postern sendmail [-t] [-i] [-f FROM] [RCPT...]`, the sendmail(1) interface for cron and
// scripts: reads a message on stdin and delivers it through the same local delivery path as SMTP.
// Exit codes from sysexits.h. Without -i (or -oi), a line with a single "." ends the message.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "base/calendar.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "delivery/local.hpp"
#include "dkim/keys.hpp"
#include "mime/headers.hpp"
#include "queue/envelope.hpp"
#include "queue/spool.hpp"
#include "smtp/proto/address.hpp"
#include "smtp/proto/data_reader.hpp"
#include "smtp/server/session.hpp"
#include "tls/server.hpp"

namespace postern::cli {
namespace {

// Reads the message from stdin with LF line ends; without `ignore_dots` a lone "." line ends it.
std::string read_message(bool ignore_dots) {
  std::string text;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!ignore_dots && line == ".") break;
    text += line;
    text += '\n';
  }
  return text;
}

// Removes the Bcc field (with its continuation lines) from the header section.
std::string strip_bcc(const std::string& text) {
  size_t body;
  mime::parse_header(text, &body);
  std::string out;
  bool skipping = false;
  size_t pos = 0;
  while (pos < body) {
    size_t eol = text.find('\n', pos);
    size_t next = eol == std::string::npos ? text.size() : eol + 1;
    std::string_view line(text.data() + pos, next - pos);
    bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (!continuation) skipping = istarts_with(line, "bcc:");
    if (!skipping) out += line;
    pos = next;
  }
  out += text.substr(body);
  return out;
}

}  // namespace

int cmd_sendmail(const std::string& dir, const Args& args) {
  bool from_headers = false, ignore_dots = false;
  std::string sender, full_name;
  bool sender_given = false;
  std::vector<std::string> rcpts;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      rcpts.insert(rcpts.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (a == "-t") {
      from_headers = true;
    } else if (a == "-i" || a == "-oi") {
      ignore_dots = true;
    } else if (a == "-f" || a == "-r") {
      if (i + 1 >= args.size()) return kExUsage;
      sender = args[++i];
      sender_given = true;
    } else if ((a.rfind("-f", 0) == 0 || a.rfind("-r", 0) == 0) && a.size() > 2) {
      sender = a.substr(2);
      sender_given = true;
    } else if (a == "-F") {
      if (i + 1 >= args.size()) return kExUsage;
      full_name = args[++i];
    } else if (a.rfind("-F", 0) == 0 && a.size() > 2) {
      full_name = a.substr(2);
    } else if (a == "-bm" || a.rfind("-o", 0) == 0 || a == "-v" || a.rfind("-B", 0) == 0) {
      // Accepted for compatibility: delivery mode and options that do not apply here.
    } else if (!a.empty() && a[0] == '-') {
      fmt::print(stderr, "postern: sendmail: unsupported option {}\n", a);
      return kExUsage;
    } else {
      rcpts.push_back(a);
    }
  }
  auto cfg = config::Config::load(dir, true);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return kExConfig;
  }
  // Like Postfix's sendmail, say nothing on success (cron mails whatever a job prints): log to the mail log.
  std::string logfile = cfg->get_path("maillog_file");
  log::init(logfile.empty() ? log::Sink::kSyslog : log::Sink::kFile, logfile);
  delivery::LocalDelivery local(*cfg);
  std::string hostname = cfg->get("myhostname");
  passwd* pw = ::getpwuid(::getuid());
  std::string login = pw ? pw->pw_name : std::to_string(::getuid());

  std::string text = read_message(ignore_dots);
  auto fields = mime::parse_header(text);
  if (from_headers) {
    for (const char* h : {"To", "Cc", "Bcc"})
      for (const auto& f : fields)
        if (iequals(f.name, h))
          for (auto& a : mime::parse_address_list(f.value)) rcpts.push_back(a);
    text = strip_bcc(text);
  }
  if (rcpts.empty()) {
    fmt::print(stderr, "postern: sendmail: no recipients specified\n");
    return kExUsage;
  }
  if (!sender_given) sender = login;

  queue::Envelope env;
  env.queue_id = queue::new_queue_id();
  env.arrival = std::chrono::system_clock::now();
  env.client = "local";
  env.trusted_origin = true;
  auto canonical = [&](const std::string& addr, bool is_sender) -> std::optional<std::string> {
    auto p = smtp::proto::parse_path(addr, is_sender, true);
    if (p.error != smtp::proto::AddressError::kNone || !p.rest.empty()) return std::nullopt;
    if (p.address.null) return std::string();
    if (p.address.domain.empty()) p.address.domain = local.myorigin();
    return p.address.str();
  };
  auto s = canonical(sender, true);
  if (!s) {
    fmt::print(stderr, "postern: sendmail: bad sender address \"{}\"\n", printable(sender));
    return kExDataErr;
  }
  env.sender = *s;
  for (const auto& r : rcpts) {
    auto c = canonical(r, false);
    if (!c) {
      fmt::print(stderr, "postern: sendmail: bad recipient address \"{}\"\n", printable(r));
      return kExDataErr;
    }
    size_t at = c->rfind('@');
    auto res = local.resolve(c->substr(0, at), c->substr(at + 1));
    switch (res.status) {
      case delivery::RcptStatus::kLocal:
        break;
      case delivery::RcptStatus::kUnknownUser:
        fmt::print(stderr, "postern: sendmail: {}: unknown user\n", *c);
        return kExNoUser;
      case delivery::RcptStatus::kNotOurDomain:
        env.outbound.push_back(*c);  // the outbound queue
        continue;
      case delivery::RcptStatus::kMailboxFull:
      case delivery::RcptStatus::kUnsupported:
      case delivery::RcptStatus::kLookupFailed:
        fmt::print(stderr, "postern: sendmail: {}: cannot deliver: {}\n", *c, res.detail);
        return kExUnavailable;
    }
    env.recipients.push_back(*c);
  }

  // Headers a local submission gets when it lacks them (Postfix's cleanup adds the same).
  std::string added;
  auto date = rfc5322_date(env.arrival);
  if (!mime::find_field(fields, "From")) {
    std::string from = env.sender.empty() ? "MAILER-DAEMON@" + hostname : env.sender;
    added +=
        full_name.empty() ? fmt::format("From: {}\n", from) : fmt::format("From: {} <{}>\n", full_name, from);
  }
  if (!mime::find_field(fields, "Date")) added += fmt::format("Date: {}\n", date);
  if (!mime::find_field(fields, "Message-ID"))
    added += fmt::format("Message-Id: <{}@{}>\n", env.queue_id, hostname);
  std::string received = fmt::format("Received: by {} ({}, from userid {})\n\tid {}; {}\n", hostname,
                                     cfg->get("mail_name"), ::getuid(), env.queue_id, date);
  log::info("pickup", "{}: uid={} from=<{}>", env.queue_id, ::getuid(), env.sender);
  queue::Spool spool(cfg->get_path("queue_directory"));
  // DKIM keys are root's (mode 0600): root's submissions (cron, scripts) are signed like the server's.
  auto dkim = ::geteuid() == 0 && !env.outbound.empty() ? dkim::KeyTable::load(cfg->dir(), tls::read_directly)
                                                        : nullptr;
  auto outcome = delivery::deliver_and_queue(local, spool, dkim.get(), env, received + added, text);
  switch (outcome.error.kind) {
    case store::ErrorKind::kNone:
      // The running queue manager takes outbound mail at once (else at its next scan or start).
      if (pid_t pid = outcome.queued ? running_pid(*cfg) : 0) ::kill(pid, SIGUSR1);
      return 0;
    case store::ErrorKind::kQuotaExceeded:
      fmt::print(stderr, "postern: sendmail: mailbox full: {}\n", outcome.error.detail);
      return kExCantCreat;
    case store::ErrorKind::kPermanent:
      fmt::print(stderr, "postern: sendmail: {}\n", outcome.error.detail);
      return kExUnavailable;
    case store::ErrorKind::kNoSpace:
    case store::ErrorKind::kTemporary:
      break;
  }
  fmt::print(stderr, "postern: sendmail: delivery failed, try again later: {}\n", outcome.error.detail);
  return kExTempFail;
}

}  // namespace postern::cli

#include "smtp/server/session.hpp"

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

#include "auth/passdb.hpp"
#include "base/calendar.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "mime/headers.hpp"

namespace postern::smtp::server {

using proto::Command;
using proto::Reply;
using proto::Verb;

namespace {

// Verbs in the order Postfix lists them in its disconnect line.
constexpr std::string_view kSummaryOrder[] = {"helo", "ehlo", "starttls", "auth", "mail", "rcpt",   "bdat",
                                              "data", "rset", "noop",     "vrfy", "quit", "unknown"};
// Domains whose DNS answer a session remembers (reject_unknown_*_domain) before it starts afresh.
constexpr size_t kMaxDnsAnswers = 256;

}  // namespace

Settings Settings::from_config(const config::Config& config, std::string_view service, bool tls_available) {
  Settings s;
  std::string level = config.get("smtpd_tls_security_level", service);
  if (tls_available && level == "may") s.tls_level = TlsLevel::kMay;
  if (tls_available && level == "encrypt") s.tls_level = TlsLevel::kEncrypt;
  s.hostname = config.get("myhostname", service);
  s.banner = config.get("smtpd_banner", service);
  s.mail_name = config.get("mail_name", service);
  s.myorigin = to_lower(config.get("myorigin", service));
  s.message_size_limit = static_cast<uint64_t>(config.get_int("message_size_limit", service));
  s.recipient_limit = static_cast<size_t>(config.get_int("smtpd_recipient_limit", service));
  s.soft_error_limit = static_cast<int>(config.get_int("smtpd_soft_error_limit", service));
  s.hard_error_limit = static_cast<int>(config.get_int("smtpd_hard_error_limit", service));
  s.junk_command_limit = static_cast<int>(config.get_int("smtpd_junk_command_limit", service));
  s.line_length_limit = static_cast<size_t>(config.get_int("line_length_limit", service));
  s.hopcount_limit = static_cast<int>(config.get_int("hopcount_limit", service));
  s.disable_vrfy = config.get_bool("disable_vrfy_command", service);
  s.helo_required = config.get_bool("smtpd_helo_required", service);
  s.smtputf8 = config.get_bool("smtputf8_enable", service);
  s.sasl_enabled = config.get_bool("smtpd_sasl_auth_enable", service);
  s.broken_sasl_auth_clients = config.get_bool("broken_sasl_auth_clients", service);
  s.sasl_authenticated_header = config.get_bool("smtpd_sasl_authenticated_header", service);
  auto security = config.get_list("smtpd_sasl_security_options", service);
  s.sasl_noplaintext = std::find(security.begin(), security.end(), "noplaintext") != security.end();
  s.sasl = auth::sasl_options(config, service);
  return s;
}

Session::Session(Settings settings, Client client, RecipientCheck check)
    : settings_(std::move(settings)), client_(std::move(client)), check_(std::move(check)) {
  assert(settings_.policy);
  trusted_ = settings_.policy->trusted(client_.address);
}

void Session::set_tls(const tls::Info& info) {
  tls_ = info;
  reset_transaction();
  helo_.clear();
  esmtp_ = false;
  sasl_.reset();
  sasl_user_.clear();
  sasl_method_.clear();
}

Reply Session::greeting() const {
  return Reply(220, "", settings_.banner);
}

void Session::count(std::string_view verb, bool ok) {
  auto& c = counts_[std::string(verb)];
  c.second++;
  if (ok) c.first++;
}

std::string Session::command_summary() const {
  std::string out;
  int ok_total = 0, all_total = 0;
  for (std::string_view verb : kSummaryOrder) {
    auto it = counts_.find(std::string(verb));
    if (it == counts_.end()) continue;
    auto [ok, total] = it->second;
    ok_total += ok;
    all_total += total;
    out += ok == total ? fmt::format("{}={} ", verb, total) : fmt::format("{}={}/{} ", verb, ok, total);
  }
  out += ok_total == all_total ? fmt::format("commands={}", all_total)
                               : fmt::format("commands={}/{}", ok_total, all_total);
  return out;
}

Step Session::reply(Reply r, Next next) {
  Step s;
  s.replies.push_back(std::move(r));
  s.next = next;
  return s;
}

Step Session::error(Reply r) {
  return penalize(reply(std::move(r)));
}

Step Session::penalize(Step s) {
  ++errors_;
  if (settings_.hard_error_limit > 0 && errors_ >= settings_.hard_error_limit) {
    log::info("smtpd", "too many errors after {} from {}", s.replies.front().code, client_.log_name());
    s.replies.push_back(Reply(421, "4.7.0", settings_.hostname + " Error: too many errors"));
    s.next = Next::kClose;
  } else if (settings_.soft_error_limit > 0 && errors_ >= settings_.soft_error_limit) {
    s.delay = true;
  }
  return s;
}

void Session::reset_transaction() {
  mail_given_ = false;
  smtputf8_ = false;
  sender_fqdn_ = true;
  bdat_active_ = false;
  bdat_failed_ = false;
  rcpt_attempts_ = 0;
  envelope_ = queue::Envelope{};
  content_.clear();
  content_.shrink_to_fit();
  data_reader_.reset();
  bdat_normalizer_ = proto::CrlfToLf{};
  bdat_bytes_ = 0;
}

Step Session::pregreet() {
  log::info("smtpd", "PREGREET from {}: the client talked before the greeting", client_.log_name());
  return reply(Reply(554, "5.5.0", "Error: SMTP protocol synchronization"), Next::kClose);
}

Step Session::line_too_long() {
  count("unknown", false);
  return error(Reply(500, "5.5.2", "Error: line too long"));
}

Step Session::command(std::string_view line, bool more_pending) {
  proto::ParseOptions opts;
  opts.smtputf8_enabled = settings_.smtputf8 && esmtp_;
  proto::ParseResult parsed = proto::parse_command(line, opts);
  const Command& c = parsed.command;
  std::string verb = c.verb == Verb::kUnknown ? "unknown" : to_lower(c.verb_text);

  bool must_be_last = c.verb == Verb::kEhlo || c.verb == Verb::kHelo || c.verb == Verb::kData ||
                      c.verb == Verb::kStarttls || c.verb == Verb::kAuth || c.verb == Verb::kQuit;
  if (more_pending && c.verb != Verb::kQuit && (must_be_last || !esmtp_)) {
    count(verb, false);
    log::info("smtpd", "improper command pipelining after {} from {}", c.verb_text, client_.log_name());
    return reply(Reply(554, "5.5.0", "Error: SMTP protocol synchronization"), Next::kClose);
  }
  if (parsed.error) {
    count(verb, false);
    return error(*parsed.error);
  }
  Step s;
  bool allowed_before_tls = c.verb == Verb::kHelo || c.verb == Verb::kEhlo || c.verb == Verb::kStarttls ||
                            c.verb == Verb::kNoop || c.verb == Verb::kRset || c.verb == Verb::kQuit ||
                            c.verb == Verb::kHelp;
  if (settings_.tls_level == TlsLevel::kEncrypt && !tls_.active && !allowed_before_tls) {
    count(verb, false);
    return error(Reply(530, "5.7.0", "Must issue a STARTTLS command first"));
  }
  switch (c.verb) {
    case Verb::kHelo:
      s = on_helo(c, false);
      break;
    case Verb::kEhlo:
      s = on_helo(c, true);
      break;
    case Verb::kMail:
      s = on_mail(c);
      break;
    case Verb::kRcpt:
      s = on_rcpt(c);
      break;
    case Verb::kData:
      s = on_data();
      break;
    case Verb::kBdat:
      s = on_bdat(c);
      break;
    case Verb::kRset:
      reset_transaction();
      s = reply(Reply(250, "2.0.0", "Ok"));
      break;
    case Verb::kNoop:
      s = reply(Reply(250, "2.0.0", "Ok"));
      break;
    case Verb::kQuit:
      s = reply(Reply(221, "2.0.0", "Bye"), Next::kClose);
      break;
    case Verb::kVrfy:
      s = on_vrfy();
      break;
    case Verb::kHelp:
      s = reply(Reply(214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT"));
      break;
    case Verb::kStarttls:
      s = on_starttls(c);
      break;
    case Verb::kAuth:
      s = on_auth(c);
      break;
    case Verb::kExpn:  // known, deliberately not implemented (it would list alias members): 502
      s = error(Reply(502, "5.5.1", "Error: command not implemented"));
      break;
    case Verb::kUnknown:
      s = error(Reply(500, "5.5.2", "Error: command not recognized"));
      break;
  }
  // Postfix's smtpd_junk_command_limit: past it, each NOOP, VRFY or RSET counts as an error.
  bool junk = c.verb == Verb::kNoop || c.verb == Verb::kVrfy || c.verb == Verb::kRset;
  if (junk && s.next != Next::kClose && settings_.junk_command_limit > 0 &&
      ++junk_commands_ > settings_.junk_command_limit)
    s = penalize(std::move(s));
  // An AUTH exchange is counted once, when it ends (auth_line); a RCPT waiting for DNS when it is decided.
  if (s.next != Next::kAuth && s.next != Next::kLookup)
    count(verb, !s.replies.empty() && s.replies.front().code < 400);
  return s;
}

Step Session::on_helo(const Command& c, bool extended) {
  reset_transaction();
  helo_ = c.arg;
  esmtp_ = extended;
  if (!extended) return reply(Reply(250, "", settings_.hostname));
  Reply r;
  r.code = 250;
  r.lines.push_back(settings_.hostname);
  r.lines.push_back("PIPELINING");
  r.lines.push_back(settings_.message_size_limit ? fmt::format("SIZE {}", settings_.message_size_limit)
                                                 : "SIZE");
  if (!settings_.disable_vrfy) r.lines.push_back("VRFY");
  if (settings_.tls_level != TlsLevel::kNone && !tls_.active) r.lines.push_back("STARTTLS");
  r.lines.push_back("ENHANCEDSTATUSCODES");
  r.lines.push_back("8BITMIME");
  r.lines.push_back("DSN");
  if (settings_.smtputf8) r.lines.push_back("SMTPUTF8");
  if (tls_.active) r.lines.push_back("REQUIRETLS");  // RFC 8689 2: only inside TLS
  r.lines.push_back("CHUNKING");
  // With TLS required, AUTH is offered only inside TLS (Postfix's encrypt level implies smtpd_tls_auth_only).
  bool tls_pending = settings_.tls_level == TlsLevel::kEncrypt && !tls_.active;
  if (settings_.sasl_enabled && credentials_ && !tls_pending) {
    std::string mechanisms;
    for (const auto& m : auth::sasl::offered_mechanisms(sasl_options())) mechanisms += " " + m;
    if (!mechanisms.empty()) {
      r.lines.insert(r.lines.end() - 1, "AUTH" + mechanisms);
      if (settings_.broken_sasl_auth_clients)
        r.lines.insert(r.lines.end() - 1, "AUTH=" + mechanisms.substr(1));
    }
  }
  return reply(std::move(r));
}

Step Session::on_starttls(const Command& c) {
  if (settings_.tls_level == TlsLevel::kNone)
    return error(Reply(502, "5.5.1", "Error: command not implemented"));
  if (tls_.active) return error(Reply(554, "5.5.1", "Error: TLS already active"));
  if (!c.arg.empty()) return error(Reply(501, "5.5.4", "Syntax: STARTTLS"));
  if (mail_given_) return error(Reply(503, "5.5.1", "Error: MAIL transaction in progress"));
  return reply(Reply(220, "2.0.0", "Ready to start TLS"), Next::kStartTls);
}

Step Session::on_mail(const Command& c) {
  if (settings_.helo_required && helo_.empty())
    return error(Reply(503, "5.5.1", "Error: send HELO/EHLO first"));
  if (mail_given_) return error(Reply(503, "5.5.1", "Error: nested MAIL command"));
  if (!esmtp_ && (c.mail.size || c.mail.body != proto::Body::kDefault || c.mail.smtputf8 ||
                  c.mail.ret != proto::Ret::kUnspecified || c.mail.envid || c.mail.requiretls))
    return error(Reply(555, "5.5.4", "Unsupported option: ESMTP parameters need EHLO"));
  // RFC 8689 2: REQUIRETLS only in a session that is itself TLS (it is not offered before).
  if (c.mail.requiretls && !tls_.active)
    return error(Reply(530, "5.7.10", "REQUIRETLS needs a TLS session: STARTTLS first"));
  if (c.mail.size && settings_.message_size_limit && *c.mail.size > settings_.message_size_limit)
    return error(Reply(552, "5.3.4", "Message size exceeds fixed limit"));
  reset_transaction();
  mail_given_ = true;
  smtputf8_ = c.mail.smtputf8;
  sender_fqdn_ = is_fqdn(c.address.domain);
  envelope_.queue_id = queue::new_queue_id();
  envelope_.arrival = std::chrono::system_clock::now();
  envelope_.client = client_.log_name();
  envelope_.ret = c.mail.ret;
  envelope_.envid = c.mail.envid.value_or("");
  envelope_.requiretls = c.mail.requiretls;
  envelope_.trusted_origin = trusted_ || !sasl_user_.empty();
  if (!c.address.null) {
    proto::Address a = c.address;
    if (a.domain.empty()) a.domain = settings_.myorigin;
    envelope_.sender = a.str();
  }
  log::info(
      "smtpd", "{}: client={}{}", envelope_.queue_id, client_.log_name(),
      sasl_user_.empty() ? "" : fmt::format(", sasl_method={}, sasl_username={}", sasl_method_, sasl_user_));
  return reply(Reply(250, "2.1.0", "Ok"));
}

Step Session::on_rcpt(const Command& c) {
  if (!mail_given_) return error(Reply(503, "5.5.1", "Error: need MAIL command"));
  if (!esmtp_ && (c.rcpt.notify || c.rcpt.orcpt))
    return error(Reply(555, "5.5.4", "Unsupported option: ESMTP parameters need EHLO"));
  ++rcpt_attempts_;
  proto::Address a = c.address;
  if (a.domain.empty()) a.domain = settings_.myorigin;
  std::string rcpt = a.str();
  if (a.utf8 && !smtputf8_) return error(Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
  if (envelope_.recipients.size() + envelope_.outbound.size() >= settings_.recipient_limit)
    return error(Reply(452, "4.5.3", "Error: too many recipients"));
  return rcpt_policy(c);
}

Step Session::looked_up(dns::MailDomain found) {
  assert(pending_rcpt_);
  if (dns_answers_.size() >= kMaxDnsAnswers) dns_answers_.clear();  // bounded, whatever a client sends
  dns_answers_[pending_lookup_] = found;
  proto::Command c = std::move(*pending_rcpt_);
  pending_rcpt_.reset();
  Step s = rcpt_policy(c);
  if (s.next != Next::kLookup) count("rcpt", s.replies.front().code < 400);
  return s;
}

Step Session::rcpt_policy(const Command& c) {
  proto::Address a = c.address;
  if (a.domain.empty()) a.domain = settings_.myorigin;
  std::string rcpt = a.str();
  const Policy& policy = *settings_.policy;
  // An address literal of ours ("user@[192.0.2.1]") is a local address, as in Postfix.
  bool our_literal = policy.is_our_literal(a.domain);
  std::string domain = our_literal ? settings_.hostname : a.domain;
  delivery::Resolution res = check_(a.local, domain);
  RcptFacts f;
  f.recipient = rcpt;
  f.sender = envelope_.sender;
  f.login = sasl_user_;
  f.trusted_client = trusted_;
  f.recipient_fqdn = is_fqdn(c.address.domain);
  f.sender_fqdn = sender_fqdn_;
  f.ours = our_literal || res.status != delivery::RcptStatus::kNotOurDomain;
  f.relay_domain = !f.ours && policy.is_relay_domain(a.domain);
  f.routed = has_routing(a.local);
  f.unknown_user = res.status == delivery::RcptStatus::kUnknownUser;
  f.domain_may_exist = domain_may_exist(a.domain);
  auto dns_answer = [this](std::string_view d) -> std::optional<dns::MailDomain> {
    auto it = dns_answers_.find(to_lower(d));
    if (it == dns_answers_.end()) return std::nullopt;
    return it->second;
  };
  f.recipient_domain = to_lower(a.domain);
  f.recipient_dns = dns_answer(f.recipient_domain);
  if (size_t at = envelope_.sender.rfind('@'); at != std::string::npos) {
    f.sender_domain = to_lower(envelope_.sender.substr(at + 1));
    f.sender_dns = dns_answer(f.sender_domain);
    f.sender_ours =
        check_(envelope_.sender.substr(0, at), f.sender_domain).status != delivery::RcptStatus::kNotOurDomain;
  }
  f.sender_owned = [this] { return sender_owned(); };
  auto reject = [&](Reply r) {
    // Guessing addresses is throttled like guessing passwords (auth/throttle, in the driver).
    if (f.unknown_user && !trusted_ && sasl_user_.empty()) {
      ++auth_failures_;
      failed_login_.clear();
    }
    log::info("smtpd", "NOQUEUE: reject: RCPT from {}: {} {} {}; from=<{}> to=<{}> proto={} helo=<{}>{}",
              client_.log_name(), r.code, r.enhanced, r.lines.front(), envelope_.sender, rcpt,
              esmtp_ ? "ESMTP" : "SMTP", printable(helo_), res.detail.empty() ? "" : " (" + res.detail + ")");
    return error(std::move(r));
  };
  Verdict verdict = policy.check_rcpt(f);
  if (!verdict.lookup.empty()) {
    pending_rcpt_ = c;
    pending_lookup_ = verdict.lookup;
    Step s;
    s.next = Next::kLookup;
    s.lookup = std::move(verdict.lookup);
    return s;
  }
  if (verdict.reply) return reject(std::move(*verdict.reply));
  // Sender-specified routing to one of our domains is never followed, whoever asks (no percent hack, no
  // bang paths, no source routes in local parts).
  if (f.ours && f.routed) return reject(relay_denied_reply(rcpt));
  auto remember_dsn = [&](const std::string& address) {
    if (c.rcpt.notify || c.rcpt.orcpt) envelope_.dsn[address] = {c.rcpt.notify, c.rcpt.orcpt};
  };
  if (!f.ours) {
    remember_dsn(rcpt);
    envelope_.outbound.push_back(rcpt);
    return reply(Reply(250, "2.1.5", "Ok"));
  }
  auto refuse = [&](int code, std::string_view enhanced, std::string_view why) {
    return reject(Reply(code, enhanced, fmt::format("<{}>: {}", rcpt, why)));
  };
  switch (res.status) {
    case delivery::RcptStatus::kLocal:
      break;
    case delivery::RcptStatus::kUnknownUser:
    case delivery::RcptStatus::kNotOurDomain:  // our address literal, but $myhostname is not a local domain
      return reject(unknown_user_reply(rcpt));
    case delivery::RcptStatus::kMailboxFull:
      return refuse(552, "5.2.2", "Mailbox full");
    case delivery::RcptStatus::kUnsupported:
      return refuse(451, "4.3.0", "Recipient address rejected: cannot deliver to this address");
    case delivery::RcptStatus::kLookupFailed:
      return refuse(451, "4.3.0", "Temporary lookup failure");
  }
  a.domain = domain;
  remember_dsn(a.str());
  envelope_.recipients.push_back(a.str());
  return reply(Reply(250, "2.1.5", "Ok"));
}

bool Session::sender_owned() const {
  if (iequals(envelope_.sender, sasl_user_) || settings_.policy->listed_owner(sasl_user_, envelope_.sender))
    return true;
  return owner_ && owner_(sasl_user_, envelope_.sender);
}

Step Session::on_data() {
  if (bdat_active_) return error(Reply(503, "5.5.1", "Error: DATA not allowed after BDAT"));
  if (!mail_given_) return error(Reply(503, "5.5.1", "Error: need MAIL command"));
  if (envelope_.recipients.empty() && envelope_.outbound.empty()) {
    if (rcpt_attempts_ > 0) return error(Reply(554, "5.5.1", "Error: no valid recipients"));
    return error(Reply(503, "5.5.1", "Error: need RCPT command"));
  }
  content_.clear();
  data_reader_.emplace(settings_.message_size_limit);
  return reply(Reply(354, "", "End data with <CR><LF>.<CR><LF>"), Next::kData);
}

Step Session::data_done() {
  if (data_reader_->too_big()) {
    log::info("smtpd", "{}: reject: size {} exceeds message_size_limit {} from {}", envelope_.queue_id,
              data_reader_->size(), settings_.message_size_limit, client_.log_name());
    reset_transaction();
    return error(Reply(552, "5.3.4", "Message size exceeds fixed limit"));
  }
  return ready_to_deliver();
}

Step Session::ready_to_deliver() {
  int hops = 0;
  for (const auto& f : mime::parse_header(content_))
    if (iequals(f.name, "Received")) ++hops;
  if (settings_.hopcount_limit > 0 && hops >= settings_.hopcount_limit) {
    log::info("smtpd", "{}: reject: too many hops ({} Received: headers) from {}", envelope_.queue_id, hops,
              client_.log_name());
    reset_transaction();
    return error(Reply(554, "5.4.6", "Too many hops"));
  }
  return reply(Reply(), Next::kDeliver);
}

Step Session::on_bdat(const Command& c) {
  std::optional<Reply> refuse;
  if (!mail_given_ || bdat_failed_) {
    refuse = Reply(503, "5.5.1", "Error: need MAIL command");
  } else if (envelope_.recipients.empty() && envelope_.outbound.empty()) {
    refuse = rcpt_attempts_ > 0 ? Reply(554, "5.5.1", "Error: no valid recipients")
                                : Reply(503, "5.5.1", "Error: need RCPT command");
  }
  Step s;
  if (refuse) {
    // The chunk is read and dropped, then the refusal is sent (RFC 3030 3: the data must be consumed).
    bdat_active_ = false;
    s = error(*refuse);
    if (s.next == Next::kClose) return s;
    s.bdat_discard = true;
  } else {
    bdat_active_ = true;
    last_chunk_ = c.last;
  }
  s.next = Next::kBdat;
  s.bdat_size = c.chunk_size;
  return s;
}

void Session::bdat_feed(std::string_view bytes) {
  bdat_bytes_ += bytes.size();
  if (settings_.message_size_limit && bdat_bytes_ > settings_.message_size_limit) {
    bdat_failed_ = true;
    content_.clear();
    return;
  }
  bdat_normalizer_.feed(bytes, content_);
}

Step Session::bdat_done() {
  if (bdat_failed_) {
    log::info("smtpd", "{}: reject: size exceeds message_size_limit {} from {}", envelope_.queue_id,
              settings_.message_size_limit, client_.log_name());
    reset_transaction();
    bdat_failed_ = true;  // later chunks of this transaction are refused too (with 503)
    mail_given_ = false;
    return error(Reply(552, "5.3.4", "Message size exceeds fixed limit"));
  }
  if (!last_chunk_) return reply(Reply(250, "2.0.0", fmt::format("Ok: {} bytes", bdat_bytes_)));
  bdat_normalizer_.finish(content_);
  return ready_to_deliver();
}

Step Session::on_vrfy() {
  if (settings_.disable_vrfy) return error(Reply(502, "5.5.1", "VRFY command is disabled"));
  // The same answer for every address: VRFY must not tell which users exist.
  return reply(Reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery"));
}

bool Session::may_block(std::string_view line) {
  return istarts_with(line, "AUTH ");
}

Step Session::on_auth(const Command& c) {
  if (!settings_.sasl_enabled || !credentials_)
    return error(Reply(503, "5.5.1", "Error: authentication not enabled"));
  if (!esmtp_) return error(Reply(503, "5.5.1", "Error: send EHLO first"));
  if (!sasl_user_.empty()) return error(Reply(503, "5.5.1", "Error: already authenticated"));
  if (mail_given_) return error(Reply(503, "5.5.1", "Error: MAIL transaction in progress"));
  auto args = split_list(c.arg, " ");
  if (args.empty() || args.size() > 2)
    return error(Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"));
  if (settings_.sasl_noplaintext && (iequals(args[0], "PLAIN") || iequals(args[0], "LOGIN")))
    return error(Reply(534, "5.7.9", "Authentication mechanism is too weak"));
  sasl_ = std::make_unique<auth::sasl::Exchange>(sasl_options(), *credentials_);
  return sasl_outcome(args.size() == 2 ? sasl_->start(args[0], args[1]) : sasl_->start(args[0]));
}

Step Session::auth_line(std::string_view line) {
  Step s = sasl_outcome(sasl_->respond(line));
  if (s.next != Next::kAuth) count("auth", !s.replies.empty() && s.replies.front().code < 400);
  return s;
}

Step Session::sasl_outcome(auth::sasl::Outcome outcome) {
  using auth::sasl::Outcome;
  switch (outcome) {
    case Outcome::kChallenge:
      return reply(Reply(334, "", sasl_->challenge()), Next::kAuth);
    case Outcome::kSuccess:
      sasl_user_ = sasl_->user();
      sasl_method_ = sasl_->mechanism();
      log::info("smtpd", "{}: sasl_method={}, sasl_username={}", client_.log_name(), sasl_method_,
                sasl_user_);
      return reply(Reply(235, "2.7.0", "Authentication successful"));
    case Outcome::kFailed:
    case Outcome::kAuthzFailed:
      ++auth_failures_;
      failed_login_ = sasl_->attempted();
      log::warning("smtpd", "{}: SASL {} authentication failed", client_.log_name(), sasl_->mechanism());
      return error(Reply(535, "5.7.8", "Error: authentication failed: authentication failure"));
    case Outcome::kUnavailable:
      // RFC 4954 6: the password database could not answer; not a failed login.
      log::warning("smtpd", "{}: SASL {} authentication temporarily failed (password database)",
                   client_.log_name(), sasl_->mechanism());
      return error(Reply(454, "4.7.0", "Temporary authentication failure"));
    case Outcome::kCancelled:
      return error(Reply(501, "5.7.0", "Authentication aborted"));
    case Outcome::kBadBase64:
      return error(Reply(501, "5.5.2", "Cannot decode response"));
    case Outcome::kUnknownMechanism:
      return error(Reply(504, "5.5.4", "Unrecognized authentication type"));
    case Outcome::kPrivacyRequired:
      break;
  }
  return error(Reply(538, "5.7.11", "Encryption required for requested authentication mechanism"));
}

std::string Session::received_header() const {
  // RFC 3848 / RFC 6531: ESMTPS, ESMTPA, ESMTPSA: "S" when the session was encrypted, "A" authenticated.
  std::string proto = smtputf8_ ? "UTF8SMTP" : esmtp_ ? "ESMTP" : "SMTP";
  if (tls_.active) proto += "S";
  if (!sasl_user_.empty()) proto += "A";
  std::string authenticated = settings_.sasl_authenticated_header && !sasl_user_.empty()
                                  ? fmt::format("\n\t(Authenticated sender: {})", printable(sasl_user_, 255))
                                  : "";
  std::string out = fmt::format("Received: from {} ({}){}\n\tby {} ({}) with {} id {}", printable(helo_, 255),
                                client_.name + " [" + client_.address + "]", authenticated,
                                settings_.hostname, settings_.mail_name, proto, envelope_.queue_id);
  if (envelope_.recipients.size() + envelope_.outbound.size() == 1)
    out += fmt::format("\n\tfor <{}>", envelope_.recipients.empty() ? envelope_.outbound.front()
                                                                    : envelope_.recipients.front());
  out += fmt::format("; {}\n", rfc5322_date(envelope_.arrival));
  return out;
}

Reply delivery_reply(const store::StoreError& error, std::string_view queue_id) {
  switch (error.kind) {
    case store::ErrorKind::kNone:
      return Reply(250, "2.0.0", fmt::format("Ok: queued as {}", queue_id));
    case store::ErrorKind::kNoSpace:
      return Reply(452, "4.3.1", "Insufficient system storage");
    case store::ErrorKind::kQuotaExceeded:
      return Reply(552, "5.2.2", "Mailbox full");
    case store::ErrorKind::kPermanent:
      return Reply(550, "5.2.0", "Mailbox unavailable");
    case store::ErrorKind::kTemporary:
      break;
  }
  return Reply(451, "4.3.0", "Error: mailbox write error, try again later");
}

Step Session::delivered(const store::StoreError& err) {
  junk_commands_ = 0;
  if (err.ok()) {
    log::info("smtpd", "{}: from=<{}>, size={}, nrcpt={} (delivered)", envelope_.queue_id, envelope_.sender,
              content_.size(), envelope_.recipients.size() + envelope_.outbound.size());
  }
  Reply r = delivery_reply(err, envelope_.queue_id);
  reset_transaction();
  if (!r.positive()) return error(std::move(r));
  return reply(std::move(r));
}

}  // namespace postern::smtp::server

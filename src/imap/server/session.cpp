#include "imap/server/session.hpp"

#include <algorithm>
#include <ctime>
#include <set>

#include <fmt/format.h>

#include "base/log.hpp"
#include "base/mutf7.hpp"
#include "base/strings.hpp"
#include "imap/proto/writer.hpp"
#include "imap/server/selected.hpp"

namespace postern::imap::server {

using proto::Command;
using proto::Token;
namespace md = store::maildir;

namespace {

enum Allowed { kAny = 7, kAuth = 6, kSel = 4, kNoAuth = 1 };
enum StateBit { kNotAuthBit = 1, kAuthBit = 2, kSelBit = 4 };

}  // namespace

Settings Settings::from_config(const config::Config& config, bool tls_available) {
  Settings s;
  s.hostname = config.get("myhostname");
  std::string sep = config.get("imap_hierarchy_separator");
  s.separator = sep.empty() ? '/' : sep[0];
  s.default_folders = config.get_list("imap_default_folders");
  s.sasl = auth::sasl_options(config, "imap");
  s.starttls = tls_available && config.get("ssl") != "no";
  s.message_size_limit = static_cast<uint64_t>(config.get_int("message_size_limit"));
  s.mailbox_size_limit = static_cast<uint64_t>(config.get_int("mailbox_size_limit"));
  s.metadata = config.get_bool("imap_metadata");
  s.metadata_max_size = static_cast<uint64_t>(config.get_int("imap_metadata_max_size"));
  s.metadata_max_entries = static_cast<size_t>(config.get_int("imap_metadata_max_entries"));
  s.server_admin = config.get("mail_server_admin");
  s.server_comment = config.get("mail_server_comment");
  return s;
}

std::string store_error_text(const store::StoreError& e) {
  switch (e.kind) {
    case store::ErrorKind::kNone:
      return "OK";
    case store::ErrorKind::kNoSpace:
      return "[OVERQUOTA] Not enough disk space";
    case store::ErrorKind::kQuotaExceeded:
      return "[OVERQUOTA] Quota exceeded (mailbox_size_limit)";
    case store::ErrorKind::kPermanent:
      return "[SERVERBUG] Internal error: the mailbox cannot be used";
    case store::ErrorKind::kTemporary:
      break;
  }
  return "[UNAVAILABLE] Temporary failure, try again later";
}

Session::Session(Settings settings, std::string client_ip, auth::sasl::Credentials& credentials, Login login)
    : settings_(std::move(settings)),
      ip_(std::move(client_ip)),
      credentials_(credentials),
      login_(std::move(login)) {}

Session::~Session() {
  close_selected();
}

std::string Session::greeting() const {
  return fmt::format("* OK [CAPABILITY {}] {} IMAP ready.\r\n", capabilities(), "Postern");
}

std::string Session::summary() const {
  return fmt::format("commands={} bad={}", commands_, bad_count_);
}

std::string Session::capabilities() const {
  std::string caps = "IMAP4rev1 IMAP4rev2 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+";
  if (!account_) {
    if (settings_.starttls && !tls_.active) caps += " STARTTLS";
    auto opts = sasl_options();
    for (const auto& m : auth::sasl::offered_mechanisms(opts)) caps += " AUTH=" + m;
    if (!opts.allowed || !opts.plaintext_allowed) caps += " LOGINDISABLED";
    return caps;
  }
  caps +=
      " NAMESPACE UNSELECT UIDPLUS CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE ESEARCH "
      "SEARCHRES SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES MOVE CONDSTORE QRESYNC BINARY "
      "COMPRESS=DEFLATE "
      "STATUS=SIZE "
      "SAVEDATE "
      "MULTIAPPEND UTF8=ACCEPT QUOTA QUOTA=RES-STORAGE";
  if (settings_.metadata) caps += " METADATA METADATA-SERVER";
  return caps;
}

const std::map<std::string, std::pair<Session::Handler, int>, std::less<>>& Session::commands() {
  static const std::map<std::string, std::pair<Handler, int>, std::less<>> table = {
      {"APPEND", {&Session::cmd_append, kAuth}},
      {"AUTHENTICATE", {&Session::cmd_authenticate, kNoAuth}},
      {"CAPABILITY", {&Session::cmd_capability, kAny}},
      {"CHECK", {&Session::cmd_check, kSel}},
      {"CLOSE", {&Session::cmd_close, kSel}},
      {"COMPRESS", {&Session::cmd_compress, kAuth}},
      {"COPY", {&Session::cmd_copy, kSel}},
      {"CREATE", {&Session::cmd_create, kAuth}},
      {"DELETE", {&Session::cmd_delete, kAuth}},
      {"ENABLE", {&Session::cmd_enable, kAuth}},
      {"EXAMINE", {&Session::cmd_select, kAuth}},
      {"EXPUNGE", {&Session::cmd_expunge, kSel}},
      {"FETCH", {&Session::cmd_fetch, kSel}},
      {"GETMETADATA", {&Session::cmd_getmetadata, kAuth}},
      {"GETQUOTA", {&Session::cmd_getquota, kAuth}},
      {"GETQUOTAROOT", {&Session::cmd_getquota, kAuth}},
      {"ID", {&Session::cmd_id, kAny}},
      {"IDLE", {&Session::cmd_idle, kAuth}},
      {"LIST", {&Session::cmd_list, kAuth}},
      {"LOGIN", {&Session::cmd_login, kNoAuth}},
      {"LOGOUT", {&Session::cmd_logout, kAny}},
      {"LSUB", {&Session::cmd_list, kAuth}},
      {"MOVE", {&Session::cmd_copy, kSel}},
      {"NAMESPACE", {&Session::cmd_namespace, kAuth}},
      {"NOOP", {&Session::cmd_noop, kAny}},
      {"RENAME", {&Session::cmd_rename, kAuth}},
      {"SEARCH", {&Session::cmd_search, kSel}},
      {"SORT", {&Session::cmd_sort, kSel}},
      {"THREAD", {&Session::cmd_thread, kSel}},
      {"SELECT", {&Session::cmd_select, kAuth}},
      {"SETMETADATA", {&Session::cmd_setmetadata, kAuth}},
      {"STARTTLS", {&Session::cmd_starttls, kNoAuth}},
      {"STATUS", {&Session::cmd_status, kAuth}},
      {"STORE", {&Session::cmd_store, kSel}},
      {"SUBSCRIBE", {&Session::cmd_subscribe, kAuth}},
      {"UNSELECT", {&Session::cmd_close, kSel}},
      {"UNSUBSCRIBE", {&Session::cmd_subscribe, kAuth}},
  };
  return table;
}

Next Session::ok(const std::string& tag, std::string_view text, std::string& out) {
  out += fmt::format("{} OK {}\r\n", tag, text);
  return Next::kCommand;
}

Next Session::no(const std::string& tag, std::string_view text, std::string& out) {
  out += fmt::format("{} NO {}\r\n", tag, text);
  return Next::kCommand;
}

Next Session::bad(const std::string& tag, std::string_view text, std::string& out) {
  out += fmt::format("{} BAD {}\r\n", tag.empty() ? "*" : tag, text);
  if (++bad_count_ >= settings_.max_bad_commands) {
    out += "* BYE Too many invalid IMAP commands.\r\n";
    return Next::kClose;
  }
  return Next::kCommand;
}

Next Session::refuse(const std::string& tag, std::string_view why, std::string& out) {
  return bad(tag, why, out);
}

Next Session::literal_too_big(const std::string& tag, std::string_view name, uint64_t size,
                              std::string& out) {
  std::string t = tag.empty() ? "*" : tag;
  if (name == "APPEND")
    return no(t, fmt::format("[TOOBIG] Message too large ({} bytes, the limit is {}).", size, append_limit()),
              out);
  if (name == "SETMETADATA" && account_ && settings_.metadata)
    return no(t, fmt::format("[METADATA MAXSIZE {}] Entry value too large.", settings_.metadata_max_size),
              out);
  return refuse(tag, "[TOOBIG] Literal too large.", out);
}

void Session::bye(std::string_view text, std::string& out) const {
  out += fmt::format("* BYE {}\r\n", text);
}

Next Session::execute(std::string_view text, std::string& out) {
  ++commands_;
  auto parsed = proto::parse_command(text);
  if (!parsed.ok) return bad(parsed.command.tag, parsed.error, out);
  const Command& c = parsed.command;
  auto it = commands().find(c.name);
  static const std::set<std::string, std::less<>> kUidForms = {"COPY",   "EXPUNGE", "FETCH", "MOVE",
                                                               "SEARCH", "SORT",    "STORE", "THREAD"};
  if (it == commands().end() || (c.uid && !kUidForms.count(c.name)))
    return bad(c.tag, "Unknown command.", out);
  int state = selected_ ? kSelBit : account_ ? kAuthBit : kNotAuthBit;
  if (!(it->second.second & state)) {
    if (state == kNotAuthBit) return bad(c.tag, "Please log in first.", out);
    if (state != kSelBit && (it->second.second & kSelBit)) return bad(c.tag, "No mailbox selected.", out);
    return bad(c.tag, "Already logged in.", out);
  }
  Next next = (this->*(it->second.first))(c, out);
  // What FETCH and SEARCH put into the cache goes to the index once per command, not once per message.
  if (selected_) selected_->mailbox->write_cache();
  return next;
}

// --- not authenticated, or any state ---------------------------------------------------------------------

Next Session::cmd_capability(const Command& c, std::string& out) {
  if (!c.args.empty()) return bad(c.tag, "CAPABILITY takes no arguments.", out);
  out += "* CAPABILITY " + capabilities() + "\r\n";
  return ok(c.tag, "Capability completed.", out);
}

Next Session::cmd_noop(const Command& c, std::string& out) {
  if (!c.args.empty()) return bad(c.tag, "NOOP takes no arguments.", out);
  if (selected_) {
    if (auto st = selected_->mailbox->sync(); !st.ok())
      log::warning("imap", "sync {}: {}", selected_->name, st.detail);
    report_changes(out, true, false);
  }
  return ok(c.tag, c.name == "CHECK" ? "Check completed." : "NOOP completed.", out);
}

Next Session::cmd_check(const Command& c, std::string& out) {
  return cmd_noop(c, out);
}

Next Session::cmd_logout(const Command& c, std::string& out) {
  login_slot_.reset();
  out += "* BYE Logging out\r\n";
  ok(c.tag, "Logout completed.", out);
  close_selected();
  return Next::kClose;
}

Next Session::cmd_starttls(const Command& c, std::string& out) {
  if (tls_.active) return bad(c.tag, "TLS is already active.", out);
  if (!settings_.starttls) return bad(c.tag, "TLS support isn't enabled.", out);
  if (!c.args.empty()) return bad(c.tag, "STARTTLS takes no arguments.", out);
  ok(c.tag, "Begin TLS negotiation now.", out);
  return Next::kStartTls;
}

Next Session::cmd_compress(const Command& c, std::string& out) {
  if (c.args.size() != 1 || !c.args[0].is_atom()) return bad(c.tag, "Invalid COMPRESS arguments.", out);
  if (!iequals(c.args[0].value, "DEFLATE")) return no(c.tag, "Unknown compression mechanism.", out);
  if (compressed_) return no(c.tag, "[COMPRESSIONACTIVE] Compression already active.", out);
  compressed_ = true;
  ok(c.tag, "DEFLATE active", out);
  return Next::kCompress;
}

Next Session::cmd_id(const Command& c, std::string& out) {
  if (c.args.size() != 1 || !(c.args[0].is_list() || c.args[0].type == Token::Type::kNil))
    return bad(c.tag, "Invalid ID arguments.", out);
  out +=
      "* ID (\"name\" \"Postern\" \"vendor\" \"Postern\" \"support-url\" \"https://postern.invalid/\")\r\n";
  return ok(c.tag, "ID completed.", out);
}

Next Session::cmd_enable(const Command& c, std::string& out) {
  if (c.args.empty()) return bad(c.tag, "ENABLE needs capabilities.", out);
  std::string enabled;
  for (const auto& a : c.args) {
    if (!a.is_atom()) return bad(c.tag, "Invalid ENABLE argument.", out);
    std::string cap = to_lower(a.value);
    if (cap == "condstore" && !condstore_) {
      condstore_ = true;
      enabled += " CONDSTORE";
    } else if (cap == "qresync" && !qresync_) {
      enabled += condstore_ ? " QRESYNC" : " CONDSTORE QRESYNC";
      condstore_ = qresync_ = true;
    } else if (cap == "imap4rev2" && !rev2_) {
      // RFC 9051: UTF-8 mailbox names, no \Recent, ESEARCH for SEARCH, [CLOSED].
      rev2_ = utf8_ = true;
      enabled += " IMAP4rev2";
    } else if (cap == "utf8=accept" && !utf8_) {
      utf8_ = true;
      enabled += " UTF8=ACCEPT";
    }
  }
  out += "* ENABLED" + enabled + "\r\n";
  return ok(c.tag, "Enabled.", out);
}

namespace {
constexpr std::string_view kPrivacyRequired =
    "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";
}  // namespace

Next Session::cmd_login(const Command& c, std::string& out) {
  if (c.args.size() != 2 || !c.args[0].is_astring() || !c.args[1].is_astring())
    return bad(c.tag, "Invalid LOGIN arguments.", out);
  auto opts = sasl_options();
  if (!opts.allowed || !opts.plaintext_allowed) return no(c.tag, kPrivacyRequired, out);
  auto verdict = credentials_.verify(c.args[0].text(), c.args[1].text());
  if (verdict.kind == auth::sasl::Verdict::Kind::kUnavailable) return login_unavailable(c.tag, "LOGIN", out);
  failed_login_ = c.args[0].text();
  return finish_login(c.tag, "LOGIN", verdict.ok() ? login_(verdict.user) : LoginResult{}, out);
}

Next Session::cmd_authenticate(const Command& c, std::string& out) {
  if (c.args.empty() || c.args.size() > 2 || !c.args[0].is_atom() ||
      (c.args.size() == 2 && !c.args[1].is_atom()))
    return bad(c.tag, "Invalid AUTHENTICATE arguments.", out);
  sasl_ = std::make_unique<auth::sasl::Exchange>(sasl_options(), credentials_);
  auto outcome =
      c.args.size() == 2 ? sasl_->start(c.args[0].value, c.args[1].text()) : sasl_->start(c.args[0].value);
  return sasl_outcome(c.tag, outcome, out);
}

Next Session::auth_line(std::string_view line, std::string& out) {
  std::string tag = std::move(pending_auth_tag_);
  pending_auth_tag_.clear();
  return sasl_outcome(tag, sasl_->respond(line), out);
}

Next Session::sasl_outcome(const std::string& tag, auth::sasl::Outcome outcome, std::string& out) {
  using auth::sasl::Outcome;
  switch (outcome) {
    case Outcome::kChallenge:
      pending_auth_tag_ = tag;
      out += "+ " + sasl_->challenge() + "\r\n";
      return Next::kAuthenticate;
    case Outcome::kSuccess:
      return finish_login(tag, sasl_->mechanism(), login_(sasl_->user()), out);
    case Outcome::kFailed:
      failed_login_ = sasl_->attempted();
      return finish_login(tag, sasl_->mechanism(), LoginResult{}, out);
    case Outcome::kAuthzFailed:
      return no(tag, "[AUTHORIZATIONFAILED] Authorization identity differs from the login.", out);
    case Outcome::kUnavailable:
      return login_unavailable(tag, sasl_->mechanism(), out);
    case Outcome::kCancelled:
      return bad(tag, "Authentication aborted by client.", out);
    case Outcome::kBadBase64:
      return bad(tag, "Invalid base64 data in continued response", out);
    case Outcome::kUnknownMechanism:
      return no(tag, "Unsupported authentication mechanism.", out);
    case Outcome::kPrivacyRequired:
      break;
  }
  return no(tag, kPrivacyRequired, out);
}

Next Session::finish_login(const std::string& tag, std::string_view method, LoginResult result,
                           std::string& out) {
  if (result.over_limit)
    return no(tag,
              "[LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections).",
              out);
  auto& account = result.account;
  if (!account) {
    ++auth_failures_;
    log::info("imap-login", "authentication failed: method={}, rip={}", method, ip_);
    return no(tag, "[AUTHENTICATIONFAILED] Authentication failed.", out);
  }
  account_ = std::move(account);
  login_slot_ = std::move(result.slot);
  log::info("imap-login", "Login: user=<{}>, method={}, rip={}", account_->user, method, ip_);
  if (!account_->session_token.empty()) {
    handoff_tag_ = tag;
    return Next::kHandoff;
  }
  return open_account(tag, out);
}

Next Session::login_unavailable(const std::string& tag, std::string_view method, std::string& out) {
  log::warning("imap-login", "authentication temporarily failed (password database): method={}, rip={}",
               method, ip_);
  return no(tag, "[UNAVAILABLE] Temporary authentication failure.", out);
}

Next Session::resume_login(const std::string& tag, auth::Account account, std::string& out) {
  account_ = std::move(account);
  return open_account(tag, out);
}

Next Session::open_account(const std::string& tag, std::string& out) {
  folders_ = std::make_unique<md::Folders>(account_->maildir, settings_.separator, account_->owner);
  if (auto made = md::make_maildir(account_->maildir, account_->owner); !made) {
    log::error("imap", "user={}: {}", account_->user, made.error().message);
    account_.reset();
    folders_.reset();
    return no(tag, "[UNAVAILABLE] Mailbox is not available, try again later.", out);
  }
  folders_->ensure_defaults(settings_.default_folders);
  return ok(tag, fmt::format("[CAPABILITY {}] Logged in", capabilities()), out);
}

// --- mailbox names -----------------------------------------------------------------------------------------

std::optional<std::string> Session::mailbox_name(const Token& t) const {
  if (!t.is_astring()) return std::nullopt;
  std::string_view raw = t.text();
  std::optional<std::string> name;
  if (utf8_) {
    if (!valid_utf8(raw)) return std::nullopt;
    name = std::string(raw);
  } else {
    name = mutf7_decode(raw);
  }
  if (name && iequals(*name, "INBOX")) name = "INBOX";
  if (name && istarts_with(*name, "INBOX") && name->size() > 5 && (*name)[5] == settings_.separator)
    name->replace(0, 5, "INBOX");
  return name;
}

std::string Session::wire_name(const std::string& name) const {
  std::string wire = name;
  if (!utf8_)
    if (auto enc = mutf7_encode(name)) wire = *enc;
  std::string out;
  proto::append_astring(out, wire, utf8_);
  return out;
}

std::string Session::special_use(const std::string& name) const {
  static const std::map<std::string, std::string, std::less<>> uses = {
      {"Drafts", "\\Drafts"}, {"Sent", "\\Sent"},       {"Trash", "\\Trash"},
      {"Junk", "\\Junk"},     {"Archive", "\\Archive"}, {"Flagged", "\\Flagged"}};
  auto it = uses.find(name);
  return it == uses.end() ? std::string() : it->second;
}

Result<std::shared_ptr<md::Mailbox>> Session::open_mailbox(const std::string& name, bool create) {
  auto path = folders_->path_of(name);
  if (!path) return path.error();
  if (name != "INBOX" && !folders_->exists(name))
    return Error{"[NONEXISTENT] Mailbox doesn't exist: " + name};
  return md::Mailbox::open(*path, account_->owner, create);
}

void Session::close_selected() {
  if (!selected_) return;
  if (selected_->watch >= 0) selected_->mailbox->unwatch(selected_->watch);
  selected_.reset();
}

}  // namespace postern::imap::server

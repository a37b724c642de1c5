// pop3/server/session.hpp: one POP3 server session (RFC 1939, CAPA RFC 2449, RESP-CODES and AUTH-RESP-CODE
// RFC 3206, SASL AUTH RFC 5034, STLS RFC 2595): lines in, responses out; no sockets (the net/ driver runs
// the commands that may_block() on a worker thread). The maildrop is the user's INBOX
// (store::maildir::Mailbox) as it was at login: messages delivered later show up in the next session. DELE
// only marks; the UPDATE state (QUIT) expunges the marked messages and sets \Seen on those retrieved, so a
// dropped connection changes nothing. One session per user at a time
// ([IN-USE]).
// Security: untrusted input; errors are counted and the session closes after too many; the password is
// wiped after use and never logged.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "auth/passdb.hpp"
#include "auth/sasl/exchange.hpp"
#include "config/config.hpp"
#include "store/maildir/mailbox.hpp"
#include "tls/info.hpp"

namespace postern::pop3::server {

struct Settings {
  std::string hostname;
  auth::sasl::Options sasl;  // before TLS (auth::sasl_options)
  bool starttls = false;     // STLS is offered (ssl is not "no" and a certificate is loaded)
  int max_bad_commands = 10;
  // `tls_available`: the server has a certificate for this service.
  static Settings from_config(const config::Config& config, bool tls_available);
};

// kStartTls: write the output, drop unread input, run the TLS handshake, then set_tls().
// kHandoff: a system user logged in as root: the session goes on in the user's own process (resume_login).
enum class Next { kCommand, kAuthenticate, kStartTls, kHandoff, kClose };

class Session {
 public:
  // Opens the account of an authenticated login name.
  using Login = std::function<std::optional<auth::Account>(std::string_view user)>;

  // `credentials` checks passwords (USER/PASS, AUTH) and must outlive the session.
  Session(Settings settings, std::string client_ip, auth::sasl::Credentials& credentials, Login login);
  ~Session();

  std::string greeting() const;
  Next command(std::string_view line, std::string& out);
  // Whether command(line) may block the thread: a login (crypt, opening the maildrop), QUIT (the expunge,
  // its unlinks and fsyncs), or RETR/TOP of a message over 1 MiB. The driver runs those on a worker thread
  // and the rest where it reads them.
  bool may_block(std::string_view line) const;
  // A client response in an AUTH exchange, after "+ ...".
  Next auth_line(std::string_view line, std::string& out);
  Next line_too_long(std::string& out);
  const std::string& user() const { return user_; }
  std::string summary() const;
  // After kHandoff, in the user's process: opens the maildrop and answers the login.
  Next resume_login(auth::Account account, std::string& out);
  const auth::Account& account() const { return *account_; }
  bool authenticated() const { return account_.has_value(); }
  // Failed logins so far and the name of the last one (the driver throttles them: auth/throttle).
  int auth_failures() const { return auth_failures_; }
  const std::string& failed_login() const { return failed_login_; }

  // The connection is now encrypted (implicit TLS, or STLS done): nothing learned before counts.
  void set_tls(const tls::Info& info);
  const tls::Info& tls() const { return tls_; }

 private:
  struct Message {
    uint32_t uid;
    uint64_t size;  // with CRLF: what RETR sends before byte-stuffing
    bool deleted = false;
    bool retrieved = false;
  };

  Next err(std::string_view text, std::string& out);
  auth::sasl::Options sasl_options() const { return auth::sasl::for_connection(settings_.sasl, tls_); }
  Next sasl_outcome(auth::sasl::Outcome outcome, std::string& out);
  // Opens the maildrop of an authenticated user (nothing: authentication failed).
  // Ends a login with the password database's verdict (USER/PASS or AUTH).
  Next login(const auth::sasl::Verdict& verdict, std::string_view method, std::string& out);
  Next open_maildrop(auth::Account account, std::string& out);
  // The message numbered `arg` (1-based), not deleted; null with the error written.
  Message* message(std::string_view arg, std::string& out);
  void send_message(uint32_t uid, long long body_lines, std::string& out);
  Next update(std::string& out);

  Settings settings_;
  std::string ip_;
  auth::sasl::Credentials& credentials_;
  Login login_;
  std::unique_ptr<auth::sasl::Exchange> sasl_;
  std::string pending_user_;
  std::string user_;
  std::optional<auth::Account> account_;
  std::shared_ptr<store::maildir::Mailbox> mailbox_;
  uint32_t uidvalidity_ = 0;
  std::vector<Message> messages_;
  int errors_ = 0;
  size_t retrieved_ = 0, deleted_ = 0, tops_ = 0;
  int lock_fd_ = -1;  // the maildrop lock (flock), held in the TRANSACTION state
  int auth_failures_ = 0;
  std::string failed_login_;
  tls::Info tls_;
};

}  // namespace postern::pop3::server

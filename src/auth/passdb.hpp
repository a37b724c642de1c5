// auth/passdb.hpp: the password database every protocol (IMAP LOGIN/AUTHENTICATE, POP3, SMTP AUTH) asks,
// through the SASL mechanisms (sasl::Credentials), and whose mail a login opens (account()). Virtual users
// come from passwd_file (the domain is in virtual_mailbox_domains), system users from PAM or shadow
// (auth/system), through the privileged helper when Postern runs as root.
// Blocking (crypt costs up to ~100 ms): call it off the I/O thread.
// Security: an unknown user costs the same time as a wrong password (a dummy hash is verified) and gets
// the same answer; for SCRAM it gets fake keys with a salt derived from the name and a per-process
// secret; passwords are never logged.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "auth/passwd_file.hpp"
#include "auth/sasl/exchange.hpp"
#include "auth/system.hpp"
#include "config/config.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::auth {

struct Account {
  std::string user;     // canonical login name: "alice@example.org" or the system user's name
  std::string maildir;  // the Maildir root (INBOX)
  store::maildir::Owner owner;
  // Set for a system user checked by the privileged helper (Postern runs as root): the session goes on in a
  // process of the user's own, which the helper starts only against this one-time token.
  std::string session_token;
};

// The SASL options of `service` ("smtp", "submission", "imap", "pop3", ...) before TLS, from the
// configuration: auth_mechanisms; IMAP/POP3: ssl = required (nothing without TLS), disable_plaintext_auth;
// SMTP: smtpd_tls_auth_only, smtpd_sasl_security_options (noplaintext), smtpd_sasl_local_domain.
sasl::Options sasl_options(const config::Config& config, std::string_view service);

class Passdb : public sasl::Credentials {
 public:
  explicit Passdb(const config::Config& config);

  sasl::Verdict verify(std::string_view user, std::string_view password) override;
  // System users and users with only a crypt hash have no SCRAM keys: they get fake ones (SCRAM fails).
  sasl::ScramKeys scram_sha256(std::string_view user) override;
  std::optional<Cleartext> cleartext(std::string_view user) override;
  // The account of a canonical login name that verify() or a SASL exchange returned.
  std::optional<Account> account(std::string_view user);

  // How system users are checked: by default here (auth/system); when Postern runs as root, through the
  // privileged helper, which alone can read /etc/shadow or run PAM.
  using SystemCheck =
      std::function<Result<std::optional<SystemUser>>(std::string_view user, std::string_view password)>;
  void set_system_check(SystemCheck check) { system_check_ = std::move(check); }

 private:
  // A virtual user's passwd-file entry; nothing for system users, unknown users and bad names; an error when
  // the passwd-file is broken (logged).
  Result<std::optional<PasswdEntry>> find_virtual(std::string_view user);
  // Logs why passwords cannot be checked now, once per reason.
  void unavailable(const Error& why);
  bool is_virtual(std::string_view user) const;

  std::vector<std::string> virtual_domains_;
  std::string virtual_base_;
  std::string home_mailbox_;
  std::string pam_service_;
  PasswdFile passwd_;
  std::string dummy_hash_;
  SystemCheck system_check_;
  // Session tokens of system users' logins checked by the helper (verify()), taken by account().
  std::string take_session_token(const std::string& user);
  std::mutex tokens_mutex_;  // also guards last_problem_
  std::string last_problem_;
  std::multimap<std::string, std::string> session_tokens_;
};

}  // namespace postern::auth

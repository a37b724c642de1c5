// auth/passdb.hpp: checks a login (user name + password) and says whose mail it opens: the one place every
// protocol (IMAP LOGIN/AUTHENTICATE, POP3, SMTP AUTH) asks. Virtual users come from passwd_file (the
// domain is in virtual_mailbox_domains), system users from the password database and shadow via crypt(3).
// Blocking (crypt costs up to ~100 ms): call it off the I/O thread.
// Security: an unknown user costs the same time as a wrong password (a dummy hash is verified) and gets
// the same answer; passwords are never logged.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "auth/passwd_file.hpp"
#include "auth/system.hpp"
#include "config/config.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::auth {

struct Account {
  std::string user;     // canonical login name: "alice@example.org" or the system user's name
  std::string maildir;  // the Maildir root (INBOX)
  store::maildir::Owner owner;
};

class Passdb {
 public:
  explicit Passdb(const config::Config& config);
  std::optional<Account> authenticate(std::string_view user, std::string_view password);
  // How system users are checked: by default here (auth/system); when Postern runs as root, through the
  // privileged helper, which alone can read /etc/shadow or run PAM.
  using SystemCheck =
      std::function<std::optional<SystemUser>(std::string_view user, std::string_view password)>;
  void set_system_check(SystemCheck check) { system_check_ = std::move(check); }

 private:
  std::optional<Account> virtual_user(std::string_view user, std::string_view password);
  std::optional<Account> system_user(std::string_view user, std::string_view password);

  std::vector<std::string> virtual_domains_;
  std::string virtual_base_;
  std::string home_mailbox_;
  std::string pam_service_;
  PasswdFile passwd_;
  std::string dummy_hash_;
  SystemCheck system_check_;
};

}  // namespace postern::auth

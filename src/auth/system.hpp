// auth/system.hpp: login checks of system users (the guide's "base your mail account off of your login
// account"): PAM with service `pam_service` (default "postern") when /etc/pam.d/<service> exists, else the
// shadow hash through crypt(3). Both need root: when Postern runs as root the privileged helper calls this
// for the unprivileged server; otherwise it only works for accounts whose hash is readable.
// Blocking (crypt and PAM take 100 ms or more; pam_unix delays failures): call it off the I/O thread.
// Security: the user name and password are untrusted; an unknown, locked or passwordless account costs a
// hash verification like a wrong password and gets the same answer. Passwords are never logged.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace postern::auth {

struct SystemUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::string session_token;  // from the privileged helper: lets it start the user's session process
};

// `dummy_hash`: a "{SCHEME}hash" verified when there is nothing to check, so that failures cost the same.
// Nothing: a wrong password or no such (usable) user. An error: PAM could not tell (its backend failed:
// PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, ...), a temporary failure.
Result<std::optional<SystemUser>> check_system_user(std::string_view user, std::string_view password,
                                                    const std::string& pam_service,
                                                    const std::string& dummy_hash);

}  // namespace postern::auth

#include "auth/system.hpp"

#include <pwd.h>
#include <security/pam_appl.h>
#include <shadow.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "auth/passwd_file.hpp"

namespace postern::auth {
namespace {

// PAM's conversation: answers every password prompt with the password, nothing else.
int conversation(int n, const pam_message** msgs, pam_response** out, void* data) {
  auto* password = static_cast<const std::string*>(data);
  auto* replies = static_cast<pam_response*>(std::calloc(static_cast<size_t>(n), sizeof(pam_response)));
  if (!replies) return PAM_BUF_ERR;
  for (int i = 0; i < n; ++i)
    if (msgs[i]->msg_style == PAM_PROMPT_ECHO_OFF || msgs[i]->msg_style == PAM_PROMPT_ECHO_ON)
      replies[i].resp = strdup(password->c_str());  // PAM frees it (and pam_unix wipes it first)
  *out = replies;
  return PAM_SUCCESS;
}

// Whether PAM accepts the password; an error when PAM could not tell (a backend that is down, a broken
// stack), as Dovecot's PAM passdb tells "internal failure" from "password mismatch".
Result<bool> pam_check(const std::string& service, const std::string& user, std::string_view password) {
  std::string secret(password);
  pam_conv conv{conversation, &secret};
  pam_handle_t* pamh = nullptr;
  int rc = pam_start(service.c_str(), user.c_str(), &conv, &pamh);
  if (rc == PAM_SUCCESS) rc = pam_set_item(pamh, PAM_RHOST, "postern");
  if (rc == PAM_SUCCESS) rc = pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK | PAM_SILENT);
  if (rc == PAM_SUCCESS) rc = pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK | PAM_SILENT);
  std::string why = rc == PAM_SUCCESS ? "" : pam_strerror(pamh, rc);
  pam_end(pamh, rc);
  std::fill(secret.begin(), secret.end(), '\0');
  switch (rc) {
    case PAM_SUCCESS:
      return true;
    case PAM_AUTH_ERR:
    case PAM_USER_UNKNOWN:
    case PAM_CRED_INSUFFICIENT:
    case PAM_MAXTRIES:
    case PAM_PERM_DENIED:
    case PAM_ACCT_EXPIRED:
    case PAM_NEW_AUTHTOK_REQD:
    case PAM_AUTHTOK_EXPIRED:
      return false;
    default:
      return Error{fmt::format("PAM service {}: {}", service, why)};
  }
}

}  // namespace

Result<std::optional<SystemUser>> check_system_user(std::string_view user, std::string_view password,
                                                    const std::string& pam_service,
                                                    const std::string& dummy_hash) {
  std::string name(user.substr(0, user.rfind('@')));
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  bool known = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found;
  if (known && pw.pw_uid == 0) known = false;  // root never logs in for mail
  bool ok = false;
  std::string pam_file = "/etc/pam.d/" + pam_service;
  if (!pam_service.empty() && ::access(pam_file.c_str(), R_OK) == 0) {
    // Unknown names go through PAM too: pam_unix answers them as slowly as a wrong password.
    auto accepted = pam_check(pam_service, name, password);
    if (!accepted) return accepted.error();
    ok = *accepted && known;
  } else {
    std::string hash = known ? pw.pw_passwd : "";
    spwd sp{};
    spwd* sfound = nullptr;
    std::vector<char> sbuf(16384);
    if (known && (hash == "x" || hash == "*") &&
        getspnam_r(name.c_str(), &sp, sbuf.data(), sbuf.size(), &sfound) == 0 && sfound)
      hash = sp.sp_pwdp;
    // Locked, passwordless or unreadable (not root: no shadow) accounts cannot log in.
    if (hash.empty() || hash[0] == '!' || hash[0] == '*' || hash == "x") {
      verify_password(password, dummy_hash);
    } else {
      ok = verify_password(password, "{CRYPT}" + hash);
    }
  }
  if (!ok) return std::optional<SystemUser>();
  return std::optional<SystemUser>(SystemUser{pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, {}});
}

}  // namespace postern::auth

#include "auth/passdb.hpp"

#include <pwd.h>
#include <shadow.h>
#include <unistd.h>

#include <vector>

#include "base/strings.hpp"

namespace postern::auth {
Passdb::Passdb(const config::Config& config)
    : virtual_domains_(config.get_list("virtual_mailbox_domains")),
      virtual_base_(config.get_path("virtual_mailbox_base")),
      home_mailbox_(config.get("home_mailbox")),
      passwd_(config.get_path("passwd_file")) {
  // Verified when the user does not exist, so that the answer takes as long as for a wrong password.
  auto dummy = hash_password("postern-dummy-password");
  if (dummy) dummy_hash_ = *dummy;
  for (auto& d : virtual_domains_) d = to_lower(d);
}

std::optional<Account> Passdb::authenticate(std::string_view user, std::string_view password) {
  if (user.empty() || user.size() > 256 ||
      user.find_first_of(std::string_view("/\0\r\n", 4)) != std::string_view::npos) {
    verify_password(password, dummy_hash_);
    return std::nullopt;
  }
  size_t at = user.rfind('@');
  if (at != std::string_view::npos) {
    std::string domain = to_lower(user.substr(at + 1));
    for (const auto& d : virtual_domains_)
      if (d == domain) return virtual_user(user, password);
  }
  return system_user(user, password);
}

std::optional<Account> Passdb::virtual_user(std::string_view user, std::string_view password) {
  auto entry = passwd_.find(user);
  if (!entry) {
    verify_password(password, dummy_hash_);
    return std::nullopt;
  }
  if (!verify_password(password, entry->password)) return std::nullopt;
  size_t at = entry->user.rfind('@');
  Account a;
  a.user = to_lower(entry->user);
  a.maildir =
      virtual_base_ + "/" + to_lower(entry->user.substr(at + 1)) + "/" + to_lower(entry->user.substr(0, at));
  return a;
}

std::optional<Account> Passdb::system_user(std::string_view user, std::string_view password) {
  std::string name(user.substr(0, user.rfind('@')));
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  std::string hash;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found) {
    hash = pw.pw_passwd;
    spwd sp{};
    spwd* sfound = nullptr;
    std::vector<char> sbuf(16384);
    if ((hash == "x" || hash == "*") &&
        getspnam_r(name.c_str(), &sp, sbuf.data(), sbuf.size(), &sfound) == 0 && sfound)
      hash = sp.sp_pwdp;
  }
  // Locked, passwordless or unreadable (not root: no shadow) accounts cannot log in.
  if (!found || hash.empty() || hash[0] == '!' || hash[0] == '*' || hash == "x") {
    verify_password(password, dummy_hash_);
    return std::nullopt;
  }
  if (!verify_password(password, "{CRYPT}" + hash)) return std::nullopt;
  Account a;
  a.user = pw.pw_name;
  a.maildir = std::string(pw.pw_dir) + "/" + home_mailbox_;
  if (a.maildir.back() == '/') a.maildir.pop_back();
  if (::geteuid() == 0) a.owner = {true, pw.pw_uid, pw.pw_gid};
  return a;
}

}  // namespace postern::auth

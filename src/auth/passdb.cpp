#include "auth/passdb.hpp"

#include "base/strings.hpp"

namespace postern::auth {
Passdb::Passdb(const config::Config& config)
    : virtual_domains_(config.get_list("virtual_mailbox_domains")),
      virtual_base_(config.get_path("virtual_mailbox_base")),
      home_mailbox_(config.get("home_mailbox")),
      pam_service_(config.get("auth_pam_service")),
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
  auto found = system_check_ ? system_check_(user, password)
                             : check_system_user(user, password, pam_service_, dummy_hash_);
  if (!found) return std::nullopt;
  Account a;
  a.user = found->name;
  a.maildir = found->home + "/" + home_mailbox_;
  if (a.maildir.back() == '/') a.maildir.pop_back();
  if (system_check_) a.owner = {true, found->uid, found->gid};
  return a;
}

}  // namespace postern::auth

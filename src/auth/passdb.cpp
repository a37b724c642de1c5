#include "auth/passdb.hpp"

#include <pwd.h>

#include <algorithm>
#include <vector>

#include "auth/sasl/scram.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"

namespace postern::auth {
namespace {

// Keys fake SCRAM salts for unknown users; the same for the whole process, so that repeated attempts for
// one name see one salt, as for a real user.
const std::string& scram_secret() {
  static const std::string secret = sasl::random_bytes(32);
  return secret;
}

bool valid_name(std::string_view user) {
  return !user.empty() && user.size() <= 256 &&
         user.find_first_of(std::string_view("/\0\r\n", 4)) == std::string_view::npos;
}

}  // namespace

sasl::Options sasl_options(const config::Config& config, std::string_view service) {
  sasl::Options o;
  o.mechanisms = config.get_list("auth_mechanisms", service);
  o.hostname = config.get("myhostname", service);
  if (service.starts_with("smtp") || service.starts_with("submission")) {
    o.plaintext_allowed = !config.get_bool("smtpd_tls_auth_only", service);
    o.realm = config.get("smtpd_sasl_local_domain", service);
    auto security = config.get_list("smtpd_sasl_security_options", service);
    if (std::find(security.begin(), security.end(), "noplaintext") != security.end())
      std::erase_if(o.mechanisms,
                    [](const std::string& m) { return iequals(m, "plain") || iequals(m, "login"); });
  } else {
    o.allowed = config.get("ssl", service) != "required";
    o.plaintext_allowed = !config.get_bool("disable_plaintext_auth", service);
  }
  return o;
}

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

bool Passdb::is_virtual(std::string_view user) const {
  size_t at = user.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string domain = to_lower(user.substr(at + 1));
  return std::find(virtual_domains_.begin(), virtual_domains_.end(), domain) != virtual_domains_.end();
}

Result<std::optional<PasswdEntry>> Passdb::find_virtual(std::string_view user) {
  if (!valid_name(user) || !is_virtual(user)) return std::optional<PasswdEntry>();
  auto found = passwd_.find(user);
  if (!found) unavailable(found.error());
  return found;
}

void Passdb::unavailable(const Error& why) {
  std::lock_guard lock(tokens_mutex_);
  if (why.message == last_problem_) return;  // once, not at every login
  last_problem_ = why.message;
  log::error("auth", "{}: logins fail temporarily until this is fixed", why.message);
}

sasl::Verdict Passdb::verify(std::string_view user, std::string_view password) {
  if (valid_name(user) && !is_virtual(user)) {
    auto checked = system_check_ ? system_check_(user, password)
                                 : check_system_user(user, password, pam_service_, dummy_hash_);
    if (!checked) {
      unavailable(checked.error());
      return sasl::Verdict::unavailable();
    }
    auto& found = *checked;
    if (!found) return sasl::Verdict::rejected();
    if (!found->session_token.empty()) {
      // SMTP AUTH never takes its token: keep the newest few per user (the helper expires them anyway).
      std::lock_guard lock(tokens_mutex_);
      if (session_tokens_.count(found->name) >= 4) session_tokens_.erase(session_tokens_.find(found->name));
      session_tokens_.emplace(found->name, std::move(found->session_token));
    }
    return sasl::Verdict::accepted(found->name);
  }
  auto entry = find_virtual(user);
  if (!entry) return sasl::Verdict::unavailable();
  if (!*entry) {
    verify_password(password, dummy_hash_);
    return sasl::Verdict::rejected();
  }
  if (!verify_password(password, (*entry)->password)) return sasl::Verdict::rejected();
  return sasl::Verdict::accepted(to_lower((*entry)->user));
}

sasl::ScramKeys Passdb::scram_sha256(std::string_view user) {
  auto entry = find_virtual(user);
  if (!entry) return sasl::ScramKeys::none_available();
  if (*entry) {
    if (auto keys = scram_keys_of(**entry)) {
      keys->user = to_lower((*entry)->user);
      return std::move(*keys);
    }
  }
  return sasl::fake_scram_keys(scram_secret(), user);
}

std::optional<sasl::Credentials::Cleartext> Passdb::cleartext(std::string_view user) {
  auto found = find_virtual(user);
  if (!found) return Cleartext::none_available();
  auto& entry = *found;
  if (!entry) return std::nullopt;
  for (std::string_view scheme : {"{PLAIN}", "{CLEAR}", "{CLEARTEXT}"})
    if (istarts_with(entry->password, scheme))
      return Cleartext{to_lower(entry->user), sasl::Secret(entry->password.substr(scheme.size()))};
  return std::nullopt;
}

std::string Passdb::take_session_token(const std::string& user) {
  std::lock_guard lock(tokens_mutex_);
  auto it = session_tokens_.find(user);
  if (it == session_tokens_.end()) return {};
  std::string token = std::move(it->second);
  session_tokens_.erase(it);
  return token;
}

std::optional<Account> Passdb::account(std::string_view user) {
  Account a;
  if (is_virtual(user)) {
    size_t at = user.rfind('@');
    a.user = to_lower(user);
    a.maildir = virtual_base_ + "/" + to_lower(user.substr(at + 1)) + "/" + to_lower(user.substr(0, at));
    return a;
  }
  // A system user that verify() accepted: the password database is readable by everyone.
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  std::string name(user);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) return std::nullopt;
  a.user = pw.pw_name;
  a.maildir = std::string(pw.pw_dir) + "/" + home_mailbox_;
  if (a.maildir.back() == '/') a.maildir.pop_back();
  // Running as root: the privileged helper writes as the user, and the session runs as the user.
  if (system_check_) {
    a.owner = {true, pw.pw_uid, pw.pw_gid};
    a.session_token = take_session_token(a.user);
  }
  return a;
}

}  // namespace postern::auth

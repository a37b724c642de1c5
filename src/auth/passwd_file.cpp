#include "auth/passwd_file.hpp"

#include <argon2.h>
#include <crypt.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "auth/sasl/crypto.hpp"
#include "auth/sasl/scram.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"

namespace postern::auth {
namespace {

std::vector<std::string> split_fields(std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (true) {
    size_t j = line.find(':', i);
    if (j == std::string_view::npos) {
      out.emplace_back(line.substr(i));
      break;
    }
    out.emplace_back(line.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

Result<std::vector<PasswdEntry>> parse_passwd_file(std::string_view text, std::string_view filename) {
  std::vector<PasswdEntry> out;
  int lineno = 0;
  for (std::string_view raw : split_lines(text)) {
    ++lineno;
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    auto f = split_fields(line);
    if (f[0].empty() || f.size() < 2)
      return Error{fmt::format("{}, line {}: expected user:password[:uid:gid:gecos:home:shell:extra]",
                               filename, lineno)};
    PasswdEntry e;
    e.user = f[0];
    e.password = f[1];
    std::string* rest[] = {&e.uid, &e.gid, &e.gecos, &e.home, &e.shell};
    for (size_t k = 0; k < 5 && k + 2 < f.size(); ++k) *rest[k] = f[k + 2];
    for (size_t k = 7; k < f.size(); ++k) e.extra += (k > 7 ? ":" : "") + f[k];
    out.push_back(std::move(e));
  }
  return out;
}

std::string format_passwd_entry(const PasswdEntry& e) {
  std::string line = fmt::format("{}:{}:{}:{}:{}:{}:{}:{}", e.user, e.password, e.uid, e.gid, e.gecos, e.home,
                                 e.shell, e.extra);
  return line;
}

Result<std::optional<PasswdEntry>> PasswdFile::find(std::string_view user) {
  std::lock_guard lock(mutex_);
  bool exists = false;
  if (version_.changed(path_, exists)) {
    by_user_.clear();
    broken_.clear();
    auto text = read_file(path_);
    auto entries = text ? parse_passwd_file(*text, path_) : Result<std::vector<PasswdEntry>>(text.error());
    if (entries) {
      for (auto& e : *entries) by_user_.emplace(to_lower(e.user), e);
    } else if (exists) {
      broken_ = entries.error().message;
    }
  }
  if (!exists) {
    by_user_.clear();
    broken_.clear();
  }
  if (!broken_.empty()) return Error{broken_};
  auto it = by_user_.find(to_lower(user));
  if (it == by_user_.end()) return std::optional<PasswdEntry>();
  return std::optional<PasswdEntry>(it->second);
}

Result<std::vector<PasswdEntry>> read_passwd_file(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0) return std::vector<PasswdEntry>{};
  auto text = read_file(path);
  if (!text) return text.error();
  return parse_passwd_file(*text, path);
}

Status write_passwd_file(const std::string& path, const std::vector<PasswdEntry>& entries,
                         std::optional<gid_t> group) {
  std::string text;
  for (const auto& e : entries) text += format_passwd_entry(e) + "\n";
  if (auto st = write_file_atomically(path, text, group ? 0640 : 0600); !st) return st;
  // Readable by the unprivileged server (root:mail_owner 0640), like Dovecot's root:dovecot passwd-files.
  if (group &&
      (::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0 || ::chmod(path.c_str(), 0640) != 0))
    return Error{fmt::format("{}: {}", path, std::strerror(errno))};
  return Ok{};
}

std::optional<gid_t> passwd_file_group(const std::string& mail_owner) {
  if (::geteuid() != 0) return std::nullopt;
  passwd* pw = ::getpwnam(mail_owner.c_str());
  if (!pw || pw->pw_uid == 0) return std::nullopt;
  return pw->pw_gid;
}

Result<std::string> hash_password(std::string_view password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$6$", 0, nullptr, 0, salt, sizeof salt))
    return Error{fmt::format("crypt_gensalt: {}", std::strerror(errno))};
  crypt_data data{};
  std::string pw(password);
  const char* h = crypt_rn(pw.c_str(), salt, &data, sizeof data);
  explicit_bzero(pw.data(), pw.size());
  if (!h || h[0] == '*') return Error{"crypt failed"};
  return std::string("{SHA512-CRYPT}") + h;
}

Status set_password(PasswdEntry& e, std::string_view password) {
  auto hash = hash_password(password);
  if (!hash) return hash.error();
  e.password = *hash;
  // The extra field is space-separated key=value pairs: replace ours, keep the others.
  std::string extra;
  for (const std::string& field : split_list(e.extra, " "))
    if (!field.starts_with(std::string(kScramField) + "=")) extra += std::string(field) + " ";
  auto keys = sasl::scram_keys(password, sasl::random_bytes(16), sasl::kScramIterations);
  e.extra = extra + fmt::format("{}={{SCRAM-SHA-256}}{}", kScramField, sasl::format_scram_keys(keys));
  return Ok{};
}

namespace {

// Splits "{SCHEME}rest": the scheme in lower case (empty without braces) and the rest.
std::pair<std::string, std::string_view> split_scheme(std::string_view stored) {
  if (stored.empty() || stored.front() != '{') return {"", stored};
  size_t close = stored.find('}');
  if (close == std::string_view::npos) return {"{", stored};  // no scheme can match
  return {to_lower(stored.substr(1, close - 1)), stored.substr(close + 1)};
}

}  // namespace

std::optional<sasl::ScramKeys> scram_keys_of(const PasswdEntry& e) {
  auto [scheme, rest] = split_scheme(e.password);
  if (scheme == "scram-sha-256") return sasl::parse_scram_keys(rest);
  std::string prefix = std::string(kScramField) + "={SCRAM-SHA-256}";
  for (const std::string& field : split_list(e.extra, " "))
    if (field.starts_with(prefix))
      return sasl::parse_scram_keys(std::string_view(field).substr(prefix.size()));
  return std::nullopt;
}

bool verify_password(std::string_view password, std::string_view stored) {
  auto [scheme, hash] = split_scheme(stored);
  if (scheme == "plain" || scheme == "clear" || scheme == "cleartext") return sasl::equal(hash, password);
  if (scheme == "scram-sha-256") {
    auto keys = sasl::parse_scram_keys(hash);
    return keys && sasl::scram_verify(password, *keys);
  }
  if (scheme == "argon2id" || scheme == "argon2i") {
    std::string encoded(hash);
    return argon2_verify(encoded.c_str(), password.data(), password.size(),
                         scheme == "argon2id" ? Argon2_id : Argon2_i) == ARGON2_OK;
  }
  if (!scheme.empty() && scheme != "crypt" && scheme != "sha512-crypt" && scheme != "sha256-crypt" &&
      scheme != "blf-crypt" && scheme != "md5-crypt")
    return false;
  crypt_data data{};
  std::string pw(password), h(hash);
  const char* out = crypt_rn(pw.c_str(), h.c_str(), &data, sizeof data);
  sasl::wipe(pw);
  return out && out[0] != '*' && h == out;
}

}  // namespace postern::auth

// auth/passwd_file.hpp: virtual users in Dovecot's passwd-file format
// ("user@domain:{SCHEME}hash:uid:gid:gecos:home:shell:extra", '#' comments), read with a cache that follows
// the file's mtime, and edited atomically (write a temporary file, fsync, rename) by `postern user`.
// Security: the file is trusted (root-owned) but its hashes are checked without ever logging a password.
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/sasl/mechanism.hpp"
#include "base/files.hpp"
#include "base/result.hpp"

namespace postern::auth {

struct PasswdEntry {
  std::string user;      // as written, e.g. alice@example.org
  std::string password;  // "{SHA512-CRYPT}$6$..."
  std::string uid, gid, gecos, home, shell, extra;
};

// Parses the whole file; a malformed line is an error naming the line.
Result<std::vector<PasswdEntry>> parse_passwd_file(std::string_view text, std::string_view filename);
std::string format_passwd_entry(const PasswdEntry& e);

// Read access with a cache, safe to share between threads.
class PasswdFile {
 public:
  explicit PasswdFile(std::string path) : path_(std::move(path)) {}
  // Looks `user` up (case-insensitively). Nothing when the file is missing or has no such user; an error
  // when it exists but cannot be read or parsed: nobody's password can be checked until it is fixed, which
  // is a temporary failure, not a wrong password.
  Result<std::optional<PasswdEntry>> find(std::string_view user);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::mutex mutex_;
  FileVersion version_;
  std::map<std::string, PasswdEntry> by_user_;  // lower-case user
  std::string broken_;                          // why the current version could not be read; empty: fine
};

// Editing, for `postern user`: the whole file is rewritten atomically, mode 0600.
Result<std::vector<PasswdEntry>> read_passwd_file(const std::string& path);  // a missing file: no users
// `group`: when set, the file is root:group mode 0640 (the server's mail_owner group reads it), else 0600.
Status write_passwd_file(const std::string& path, const std::vector<PasswdEntry>& entries,
                         std::optional<gid_t> group = std::nullopt);
// The group the passwd-file should have: mail_owner's, when this process is root and that user exists.
std::optional<gid_t> passwd_file_group(const std::string& mail_owner);

// Hashes a password for the passwd-file: "{SHA512-CRYPT}$6$..." (crypt(3), a fresh random salt).
Result<std::string> hash_password(std::string_view password);
// Sets an entry's password as `postern user add|passwd` stores it: the {SHA512-CRYPT} hash in the password
// field (what Dovecot verifies) and the SCRAM-SHA-256 keys in the extra field kScramField (which Dovecot
// ignores), so that PLAIN, LOGIN and SCRAM-SHA-256 all work.
Status set_password(PasswdEntry& e, std::string_view password);
inline constexpr std::string_view kScramField = "postern_scram_sha_256";
// The SCRAM-SHA-256 keys of an entry: its {SCRAM-SHA-256} password, else its kScramField extra field.
std::optional<sasl::ScramKeys> scram_keys_of(const PasswdEntry& e);
// Checks a password against a stored "{SCHEME}hash": SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, MD5-CRYPT, CRYPT
// (crypt(3): yescrypt too), ARGON2ID, ARGON2I (libargon2), SCRAM-SHA-256 (Dovecot's form), PLAIN.
bool verify_password(std::string_view password, std::string_view stored);

}  // namespace postern::auth

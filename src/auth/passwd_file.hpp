// auth/passwd_file.hpp: virtual users in Dovecot's passwd-file format
// ("user@domain:{SCHEME}hash:uid:gid:gecos:home:shell:extra", '#' comments), read with a cache that follows
// the file's mtime, and edited atomically (write a temporary file, fsync, rename) by `postern user`.
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
  // Looks `user` up (case-insensitively). Nothing when the file is missing or has no such user.
  std::optional<PasswdEntry> find(std::string_view user);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::mutex mutex_;
  FileVersion version_;
  std::map<std::string, PasswdEntry> by_user_;  // lower-case user
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
// Checks a password against a stored "{SCHEME}hash" (SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, CRYPT, PLAIN).
bool verify_password(std::string_view password, std::string_view stored);

}  // namespace postern::auth

// delivery/privileged.hpp: the privileged delivery helper (OpenSSH/OpenSMTPD-style privilege separation).
// Started as root, `postern serve` forks this small process before the network-facing process drops to
// mail_owner. Its main job: write a message into a system user's Maildir as that user (setfsuid and
// setfsgid per request, so the kernel checks every path as the user: no chown, no symlink tricks), in two
// phases like store/maildir. Requests name a user, never a path: the helper computes the Maildir itself
// from the password database and home_mailbox. It also checks system users' passwords (PAM or shadow) and
// opens the TLS certificate and key files the configuration names, for reloads.
// Security: requests come from the unprivileged process and are validated here; message bytes arrive in a
// memfd. One channel (a SOCK_SEQPACKET socketpair) per delivery thread, served by one helper thread each.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "auth/system.hpp"
#include "base/result.hpp"
#include "config/config.hpp"
#include "store/error.hpp"

namespace postern::delivery {

class PrivilegedHelper {
 public:
  // Forks the helper with `channels` request channels. Call as root, before any thread is started.
  static Result<std::unique_ptr<PrivilegedHelper>> start(const config::Config& config, int channels);
  ~PrivilegedHelper();  // closes the channels (the helper exits on EOF) and waits for it

  // Phase one: `content` written and fsync'd in tmp/ of `user`'s Maildir. Returns a token for phase two.
  Result<uint64_t> prepare(const std::string& user, std::string_view content, store::StoreError& error);
  // Phase two: the prepared file renamed into new/ and new/ fsync'd. Returns the final path.
  Result<std::string> commit(uint64_t token, store::StoreError& error);
  void abort(uint64_t token);
  // A certificate or key file the configuration names for TLS, or a DKIM key file (the helper re-reads the
  // configuration and refuses any other path; it passes the open file back): reloads read renewed
  // certificates and new DKIM keys with it after privileges were dropped.
  Result<std::string> read_tls_file(const std::string& path);
  // A system user's login (PAM or shadow, auth/system): only the helper, as root, can check it.
  // Nothing: refused; an error: the helper or PAM could not tell (a temporary failure).
  Result<std::optional<auth::SystemUser>> check_system_user(std::string_view user, std::string_view password);
  // Starts the IMAP or POP3 session of a system user who just logged in (`token` from that login) in a
  // process of the user's own, on `fd` (a socket the caller proxies the client's bytes to); `tag`: the
  // IMAP login command's, which that process answers.
  Status start_session(const std::string& token, std::string_view protocol, const std::string& tag, bool tls,
                       const std::string& ip, int fd);

  pid_t pid() const { return pid_; }

 private:
  struct Channel {
    int fd = -1;
    std::mutex mutex;
  };
  PrivilegedHelper() = default;
  // Sends one request (with an optional fd) on this thread's channel and waits for the reply.
  // `received`: where a descriptor passed back with the reply goes (else it is closed).
  Result<std::vector<std::string>> call(const std::vector<std::string>& request, int fd,
                                        int* received = nullptr);

  pid_t pid_ = -1;
  std::vector<std::unique_ptr<Channel>> channels_;
};

// Drops root for good: supplementary groups, gid, uid. Fails unless root stays unreachable afterwards.
Status drop_privileges(uid_t uid, gid_t gid);

}  // namespace postern::delivery

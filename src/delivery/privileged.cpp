#include "delivery/privileged.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "auth/passwd_file.hpp"
#include "auth/system.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "dkim/keys.hpp"
#include "store/maildir/maildir.hpp"
#include "tls/server.hpp"

namespace postern::delivery {
namespace {

constexpr size_t kMaxPacket = 8192;

// Requests and replies are NUL-separated fields in one packet.
std::string encode(const std::vector<std::string>& fields) {
  std::string out;
  for (const auto& f : fields) {
    out += f;
    out += '\0';
  }
  return out;
}

std::vector<std::string> decode(std::string_view packet) {
  std::vector<std::string> out;
  for (auto field : split(packet, '\0')) out.emplace_back(field);
  return out;
}

bool send_packet(int sock, const std::string& data, int fd) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(data.size());
}

// Receives one packet; `fd` gets a passed descriptor or -1. False on EOF or error.
bool recv_packet(int sock, std::string& data, int& fd) {
  data.resize(kMaxPacket);
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  data.resize(static_cast<size_t>(n));
  fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return true;
}

std::string kind_name(store::ErrorKind k) {
  return std::to_string(static_cast<int>(k));
}

store::ErrorKind kind_from(const std::string& s) {
  int v = std::atoi(s.c_str());
  if (v < 0 || v > static_cast<int>(store::ErrorKind::kPermanent)) return store::ErrorKind::kTemporary;
  return static_cast<store::ErrorKind>(v);
}

// The helper's side of one channel.
struct HelperState {
  std::string config_dir;
  std::string pam_service;
  std::string dummy_hash;
  // One-time tokens of successful system-user logins: a session process is started only against one.
  std::mutex token_mutex;
  std::map<std::string, std::pair<std::string, std::chrono::steady_clock::time_point>> tokens;
  std::string home_mailbox;
  uint64_t size_limit = 0;
};

std::string read_fd(int fd) {
  std::string out;
  char buf[65536];
  ::lseek(fd, 0, SEEK_SET);
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string new_token(HelperState& state, const std::string& user) {
  unsigned char raw[16];
  if (::getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) return {};
  std::string token;
  for (unsigned char b : raw) token += fmt::format("{:02x}", b);
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(state.token_mutex);
  std::erase_if(state.tokens, [&](const auto& t) { return t.second.second < now; });
  state.tokens[token] = {user, now + std::chrono::seconds(60)};
  return token;
}

// The user a token was issued for (once: the token is used up), or nothing.
std::optional<std::string> take_token(HelperState& state, const std::string& token) {
  std::lock_guard lock(state.token_mutex);
  auto it = state.tokens.find(token);
  if (it == state.tokens.end()) return std::nullopt;
  std::string user = it->second.first;
  bool fresh = it->second.second >= std::chrono::steady_clock::now();
  state.tokens.erase(it);
  if (!fresh) return std::nullopt;
  return user;
}

// Starts a user's session process: this program again, with the client's socket as descriptor 3. It runs
// as root only until it has become the user (net::serve_session).
bool spawn_session(const HelperState& state, std::vector<std::string> args, int fd) {
  if (fd == 3) {  // dup2(3, 3) would keep close-on-exec
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 4);
    ::close(fd);
    fd = copy;
  }
  args.insert(args.begin(), {"postern", "-c", state.config_dir, "session-child"});
  args.push_back(log::sink_spec());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, 3);
  pid_t pid;
  int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0;
}

void serve_channel(int sock, HelperState& state) {
  std::map<uint64_t, store::maildir::Pending> pending;
  uint64_t next_token = 1;
  std::string packet;
  int fd = -1;
  while (recv_packet(sock, packet, fd)) {
    auto req = decode(packet);
    std::vector<std::string> reply;
    auto fail = [&](const store::StoreError& e) { reply = {"err", kind_name(e.kind), e.detail}; };
    if (req.size() == 2 && req[0] == "prepare" && fd >= 0) {
      std::vector<char> buf(16384);
      passwd pw{};
      passwd* found = nullptr;
      if (getpwnam_r(req[1].c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
        fail({store::ErrorKind::kPermanent, "no such system user: " + req[1]});
      } else {
        std::string maildir = std::string(pw.pw_dir) + "/" + state.home_mailbox;
        while (maildir.size() > 1 && maildir.back() == '/') maildir.pop_back();
        std::string content = read_fd(fd);
        // Act as the user for file system checks; this thread only (setfsuid is per thread on Linux).
        setfsgid(pw.pw_gid);
        setfsuid(pw.pw_uid);
        store::StoreError err;
        auto p =
            store::maildir::write_tmp(maildir, {content}, store::maildir::Owner{}, state.size_limit, err);
        setfsuid(0);
        setfsgid(0);
        if (p) {
          uint64_t token = next_token++;
          pending[token] = std::move(*p);
          reply = {"ok", std::to_string(token)};
        } else {
          fail(err);
        }
      }
    } else if (req.size() == 3 && req[0] == "auth") {
      auto checked = auth::check_system_user(req[1], req[2], state.pam_service, state.dummy_hash);
      if (!checked) {
        fail({store::ErrorKind::kTemporary, checked.error().message});
      } else if (const auto& found = *checked) {
        reply = {"ok",
                 found->name,
                 std::to_string(found->uid),
                 std::to_string(found->gid),
                 found->home,
                 new_token(state, found->name)};
      } else {
        reply = {"no"};
      }
    } else if (req.size() == 6 && req[0] == "session" && fd >= 0 && (req[2] == "imap" || req[2] == "pop3")) {
      // {token, protocol, tag, tls, client ip}: the user's own IMAP or POP3 process, on the passed socket.
      auto user = take_token(state, req[1]);
      if (!user) {
        fail({store::ErrorKind::kPermanent, "no such login"});
      } else if (!spawn_session(state, {req[2], *user, req[3], req[4], req[5]}, fd)) {
        fail({store::ErrorKind::kTemporary, fmt::format("starting the session: {}", std::strerror(errno))});
      } else {
        reply = {"ok"};
      }
    } else if (req.size() == 2 && req[0] == "tlsfile") {
      // Only a file the configuration (read afresh: this serves reloads) names for TLS, or a DKIM key.
      auto cfg = config::Config::load(state.config_dir);
      auto files = cfg ? tls::configured_files(*cfg) : std::vector<std::string>{};
      if (cfg)
        for (const auto& key : dkim::key_files(cfg->dir())) files.push_back(key.path);
      if (std::find(files.begin(), files.end(), req[1]) == files.end()) {
        fail({store::ErrorKind::kPermanent, req[1] + ": not a TLS file or DKIM key of the configuration"});
      } else if (int file = ::open(req[1].c_str(), O_RDONLY | O_CLOEXEC); file < 0) {
        fail({store::ErrorKind::kPermanent, fmt::format("{}: {}", req[1], std::strerror(errno))});
      } else {
        bool sent = send_packet(sock, encode({"ok"}), file);
        ::close(file);
        if (!sent) break;
        continue;
      }
    } else if (req.size() == 2 && (req[0] == "commit" || req[0] == "abort")) {
      auto it = pending.find(std::strtoull(req[1].c_str(), nullptr, 10));
      if (it == pending.end()) {
        fail({store::ErrorKind::kTemporary, "unknown delivery token"});
      } else if (req[0] == "abort") {
        store::maildir::abort(it->second);
        pending.erase(it);
        reply = {"ok"};
      } else {
        store::StoreError err;
        auto final_path = store::maildir::commit(it->second, err);
        pending.erase(it);
        if (final_path) {
          reply = {"ok", *final_path};
        } else {
          fail(err);
        }
      }
    } else {
      fail({store::ErrorKind::kPermanent, "malformed request"});
    }
    if (fd >= 0) ::close(fd);
    fd = -1;
    std::fill(packet.begin(), packet.end(), '\0');  // it may have held a password
    if (!send_packet(sock, encode(reply), -1)) break;
  }
  for (auto& [token, p] : pending) store::maildir::abort(p);
  ::close(sock);
}

}  // namespace

Result<std::unique_ptr<PrivilegedHelper>> PrivilegedHelper::start(const config::Config& config,
                                                                  int channels) {
  HelperState state;
  state.config_dir = config.dir();
  state.pam_service = config.get("auth_pam_service");
  auto dummy = auth::hash_password("postern-dummy-password");
  if (dummy) state.dummy_hash = *dummy;
  state.home_mailbox = config.get("home_mailbox");
  state.size_limit = static_cast<uint64_t>(config.get_int("mailbox_size_limit"));
  std::unique_ptr<PrivilegedHelper> h(new PrivilegedHelper());
  std::vector<int> helper_ends;
  for (int i = 0; i < channels; ++i) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      return Error{fmt::format("socketpair: {}", std::strerror(errno))};
    auto c = std::make_unique<Channel>();
    c->fd = sv[0];
    h->channels_.push_back(std::move(c));
    helper_ends.push_back(sv[1]);
  }
  pid_t pid = ::fork();
  if (pid < 0) return Error{fmt::format("fork: {}", std::strerror(errno))};
  if (pid == 0) {
    // The helper: ignores the signals meant for the server (it ends when its channels close) and dies with
    // its parent.
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGCHLD, SIG_IGN);  // session processes are reaped by the kernel
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Keep only the channels: no listener, pipe or log descriptor of the server lives on in here.
    std::vector<int> keep = helper_ends;
    std::sort(keep.begin(), keep.end());
    unsigned from = 3;
    for (int fd : keep) {
      if (static_cast<unsigned>(fd) > from) ::close_range(from, static_cast<unsigned>(fd) - 1, 0);
      from = static_cast<unsigned>(fd) + 1;
    }
    ::close_range(from, ~0U, 0);
    std::vector<std::thread> threads;
    for (int fd : helper_ends) threads.emplace_back([fd, &state] { serve_channel(fd, state); });
    for (auto& t : threads) t.join();
    _exit(0);
  }
  for (int fd : helper_ends) ::close(fd);
  h->pid_ = pid;
  return h;
}

PrivilegedHelper::~PrivilegedHelper() {
  for (auto& c : channels_) ::close(c->fd);
  if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
}

Result<std::vector<std::string>> PrivilegedHelper::call(const std::vector<std::string>& request, int fd,
                                                        int* received) {
  static std::atomic<unsigned> next_index{0};
  thread_local unsigned index = next_index.fetch_add(1);
  Channel& c = *channels_[index % channels_.size()];
  std::lock_guard lock(c.mutex);
  std::string packet;
  int unused = -1;
  if (!send_packet(c.fd, encode(request), fd) || !recv_packet(c.fd, packet, unused))
    return Error{fmt::format("privileged helper: {}", errno ? std::strerror(errno) : "connection closed")};
  if (received) {
    *received = unused;
  } else if (unused >= 0) {
    ::close(unused);
  }
  return decode(packet);
}

Result<uint64_t> PrivilegedHelper::prepare(const std::string& user, std::string_view content,
                                           store::StoreError& error) {
  int fd = ::memfd_create("postern-message", MFD_CLOEXEC);
  if (fd < 0) {
    error = {store::ErrorKind::kTemporary, fmt::format("memfd_create: {}", std::strerror(errno))};
    return Error{error.detail};
  }
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = {store::ErrorKind::kTemporary, fmt::format("memfd write: {}", std::strerror(errno))};
      ::close(fd);
      return Error{error.detail};
    }
    off += static_cast<size_t>(n);
  }
  auto reply = call({"prepare", user}, fd);
  ::close(fd);
  if (!reply) {
    error = {store::ErrorKind::kTemporary, reply.error().message};
    return Error{error.detail};
  }
  if (reply->size() == 2 && (*reply)[0] == "ok") return std::strtoull((*reply)[1].c_str(), nullptr, 10);
  error = {reply->size() >= 3 ? kind_from((*reply)[1]) : store::ErrorKind::kTemporary,
           reply->size() >= 3 ? (*reply)[2] : "bad reply from the privileged helper"};
  return Error{error.detail};
}

Result<std::string> PrivilegedHelper::commit(uint64_t token, store::StoreError& error) {
  auto reply = call({"commit", std::to_string(token)}, -1);
  if (reply && reply->size() == 2 && (*reply)[0] == "ok") return (*reply)[1];
  error = {reply && reply->size() >= 3 ? kind_from((*reply)[1]) : store::ErrorKind::kTemporary,
           !reply               ? reply.error().message
           : reply->size() >= 3 ? (*reply)[2]
                                : "bad reply"};
  return Error{error.detail};
}

Result<std::optional<auth::SystemUser>> PrivilegedHelper::check_system_user(std::string_view user,
                                                                            std::string_view password) {
  std::vector<std::string> request = {"auth", std::string(user), std::string(password)};
  auto reply = call(request, -1);
  for (auto& field : request) std::fill(field.begin(), field.end(), '\0');
  // The helper gone, or PAM unable to tell: a temporary failure, not a wrong password.
  if (!reply) return Error{"privileged helper: " + reply.error().message};
  if (reply->size() == 1 && (*reply)[0] == "no") return std::optional<auth::SystemUser>();
  if (reply->size() != 6 || (*reply)[0] != "ok")
    return Error{reply->size() >= 3 ? (*reply)[2] : "bad reply from the privileged helper"};
  auth::SystemUser u;
  u.name = (*reply)[1];
  u.uid = static_cast<uid_t>(std::strtoul((*reply)[2].c_str(), nullptr, 10));
  u.gid = static_cast<gid_t>(std::strtoul((*reply)[3].c_str(), nullptr, 10));
  u.home = (*reply)[4];
  u.session_token = (*reply)[5];
  return std::optional<auth::SystemUser>(std::move(u));
}

Status PrivilegedHelper::start_session(const std::string& token, std::string_view protocol,
                                       const std::string& tag, bool tls, const std::string& ip, int fd) {
  auto reply =
      call({"session", token, std::string(protocol), tag.empty() ? "-" : tag, tls ? "1" : "0", ip}, fd);
  if (!reply) return reply.error();
  if (reply->size() == 1 && (*reply)[0] == "ok") return Ok{};
  return Error{reply->size() >= 3 ? (*reply)[2] : "bad reply from the privileged helper"};
}

Result<std::string> PrivilegedHelper::read_tls_file(const std::string& path) {
  int fd = -1;
  auto reply = call({"tlsfile", path}, -1, &fd);
  if (!reply) return reply.error();
  if (reply->size() != 1 || (*reply)[0] != "ok" || fd < 0) {
    if (fd >= 0) ::close(fd);
    return Error{reply->size() >= 3 ? (*reply)[2] : path + ": bad reply from the privileged helper"};
  }
  std::string text = read_fd(fd);
  ::close(fd);
  return text;
}

void PrivilegedHelper::abort(uint64_t token) {
  (void)call({"abort", std::to_string(token)}, -1);
}

Status drop_privileges(uid_t uid, gid_t gid) {
  if (uid == 0) return Error{"mail_owner must not be root"};
  if (::setgroups(1, &gid) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0)
    return Error{fmt::format("cannot drop privileges: {}", std::strerror(errno))};
  if (::setuid(0) == 0 || ::geteuid() == 0) return Error{"root privileges could be regained after the drop"};
  return Ok{};
}

}  // namespace postern::delivery

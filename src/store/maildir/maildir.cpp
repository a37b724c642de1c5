#include "store/maildir/maildir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/strings.hpp"

namespace postern::store {

ErrorKind error_kind_from_errno(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return ErrorKind::kNoSpace;
    case ENOTDIR:
    case ELOOP:
      return ErrorKind::kPermanent;
    default:
      return ErrorKind::kTemporary;
  }
}

}  // namespace postern::store

namespace postern::store::maildir {
namespace {

std::mutex g_name_mutex;
uint64_t g_counter = 0;
uint64_t g_last_usec = 0;  // the time in the last name made, in microseconds since the epoch

std::string maildir_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string out;
  for (char* p = buf; *p; ++p) {
    if (*p == '/') {
      out += "\\057";
    } else if (*p == ':') {
      out += "\\072";
    } else {
      out += *p;
    }
  }
  return out;
}

Status mkdir_owned(const std::string& path, mode_t mode, const Owner& owner) {
  if (::mkdir(path.c_str(), mode) != 0) {
    if (errno == EEXIST) return Ok{};
    return Error{fmt::format("mkdir {}: {}", path, std::strerror(errno))};
  }
  if (owner.chown && ::chown(path.c_str(), owner.uid, owner.gid) != 0)
    return Error{fmt::format("chown {}: {}", path, std::strerror(errno))};
  return Ok{};
}

// Parents are created owned by the process, mode 0755 (they may be shared, e.g. a virtual domain directory).
Status mkdir_parents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    std::string parent = path.substr(0, slash);
    if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
      return Error{fmt::format("mkdir {}: {}", parent, std::strerror(errno))};
  }
  return Ok{};
}

// Sum of the message sizes in one Maildir directory (new/ or cur/).
uint64_t dir_usage(const std::string& dir) {
  uint64_t total = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string_view name = e->d_name;
    size_t s = name.find(",S=");
    unsigned long long n = 0;
    if (s != std::string_view::npos) {
      std::string_view digits = name.substr(s + 3);
      size_t end = digits.find_first_not_of("0123456789");
      if (parse_u64(digits.substr(0, end), n)) {
        total += n;
        continue;
      }
    }
    struct stat st;
    if (::stat((dir + "/" + e->d_name).c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  }
  ::closedir(d);
  return total;
}

// Usage is cached per Maildir while new/ and cur/ of INBOX are unchanged since it was computed; a delivery
// of ours adds its size and keeps the cache. Folders are counted when the cache is (re)built.
struct UsageEntry {
  uint64_t bytes = 0;
  timespec new_mtime{};
  timespec cur_mtime{};
};
std::mutex g_usage_mutex;
std::map<std::string, UsageEntry> g_usage;

bool same_time(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

bool dir_times(const std::string& maildir, timespec& new_mtime, timespec& cur_mtime) {
  struct stat sn, sc;
  if (::stat((maildir + "/new").c_str(), &sn) != 0 || ::stat((maildir + "/cur").c_str(), &sc) != 0)
    return false;
  new_mtime = sn.st_mtim;
  cur_mtime = sc.st_mtim;
  return true;
}

uint64_t compute_usage(const std::string& maildir) {
  uint64_t total = dir_usage(maildir + "/new") + dir_usage(maildir + "/cur");
  DIR* d = ::opendir(maildir.c_str());
  if (!d) return total;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.size() < 2 || name[0] != '.' || name == "..") continue;
    std::string folder = maildir + "/" + e->d_name;
    total += dir_usage(folder + "/new") + dir_usage(folder + "/cur");
  }
  ::closedir(d);
  return total;
}

}  // namespace

Status make_directory(const std::string& path, mode_t mode, const Owner& owner) {
  if (auto st = mkdir_parents(path); !st) return st;
  return mkdir_owned(path, mode, owner);
}

Status make_maildir(const std::string& path, const Owner& owner) {
  if (auto st = mkdir_parents(path); !st) return st;
  for (const std::string& dir : {path, path + "/cur", path + "/new", path + "/tmp"})
    if (auto st = mkdir_owned(dir, 0700, owner); !st) return st;
  return Ok{};
}

Status make_folder(const std::string& root, std::string_view name, const Owner& owner) {
  if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..")
    return Error{fmt::format("bad folder name \"{}\"", printable(name))};
  std::string dir = fmt::format("{}/.{}", root, name);
  if (auto st = make_maildir(dir, owner); !st) return st;
  std::string marker = dir + "/maildirfolder";
  int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Error{fmt::format("create {}: {}", marker, std::strerror(errno))};
  if (owner.chown && ::fchown(fd, owner.uid, owner.gid) != 0) {
    ::close(fd);
    return Error{fmt::format("chown {}: {}", marker, std::strerror(errno))};
  }
  ::close(fd);
  return Ok{};
}

std::string unique_name(uint64_t size, uint64_t crlf) {
  static const std::string host = maildir_host();
  timeval tv;
  ::gettimeofday(&tv, nullptr);
  uint64_t usec = uint64_t(tv.tv_sec) * 1000000 + uint64_t(tv.tv_usec), counter;
  {
    // Name order is delivery order (new files get their UIDs in name order): each name made here carries a
    // later time than the one before, even within one microsecond or when the clock steps back, so the
    // counter (whose decimal digits do not sort) never decides the order.
    std::lock_guard lock(g_name_mutex);
    usec = std::max(usec, g_last_usec + 1);
    g_last_usec = usec;
    counter = ++g_counter;
  }
  std::string name =
      fmt::format("{}.M{:06}P{}Q{}.{},S={}", usec / 1000000, usec % 1000000, ::getpid(), counter, host, size);
  if (crlf != kUnknownVsize) name += fmt::format(",W={}", crlf);
  return name;
}

uint64_t crlf_size(std::string_view content) {
  return content.size() + count_bare_lf(content);
}

uint64_t usage(const std::string& maildir) {
  timespec nm{}, cm{};
  bool have_times = dir_times(maildir, nm, cm);
  {
    std::lock_guard lock(g_usage_mutex);
    auto it = g_usage.find(maildir);
    if (have_times && it != g_usage.end() && same_time(it->second.new_mtime, nm) &&
        same_time(it->second.cur_mtime, cm))
      return it->second.bytes;
  }
  uint64_t bytes = compute_usage(maildir);
  std::lock_guard lock(g_usage_mutex);
  if (have_times) g_usage[maildir] = UsageEntry{bytes, nm, cm};
  return bytes;
}

void usage_changed(const std::string& maildir, int64_t delta) {
  timespec nm{}, cm{};
  bool have_times = dir_times(maildir, nm, cm);
  std::lock_guard lock(g_usage_mutex);
  auto it = g_usage.find(maildir);
  if (it == g_usage.end()) return;
  if (!have_times) {
    g_usage.erase(it);
    return;
  }
  it->second.bytes =
      delta < 0 && static_cast<uint64_t>(-delta) > it->second.bytes ? 0 : it->second.bytes + delta;
  it->second.new_mtime = nm;
  it->second.cur_mtime = cm;
}

Result<Pending> write_tmp(const std::string& maildir, const std::vector<std::string_view>& parts,
                          const Owner& owner, uint64_t size_limit, StoreError& error) {
  uint64_t size = 0, crlf = 0;
  for (auto p : parts) {
    size += p.size();
    crlf += crlf_size(p);
  }
  if (size_limit != 0 && usage(maildir) + size > size_limit) {
    error = {ErrorKind::kQuotaExceeded,
             fmt::format("{}: mailbox_size_limit {} reached", maildir, size_limit)};
    return Error{error.detail};
  }
  Pending p;
  p.maildir = maildir;
  p.name = unique_name(size, crlf);
  p.size = size;
  // An unnamed file in new/ (O_TMPFILE) costs one directory change, not two (a name in tmp/, then a rename);
  // linked into new/ by commit() through /proc/self/fd. Else, as Maildir has it, a file in tmp/.
  static const bool proc_fds = ::access("/proc/self/fd", X_OK) == 0;
  auto create = [&] {
    if (proc_fds) {
      p.fd = ::open((maildir + "/new").c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
      if (p.fd >= 0 || errno == ENOENT) return;
      // EOPNOTSUPP, EISDIR (a file system or kernel without O_TMPFILE), or another error: tmp/ tells.
    }
    p.tmp_path = maildir + "/tmp/" + p.name;
    p.fd = ::open(p.tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  };
  create();
  if (p.fd < 0 && errno == ENOENT) {
    // The first delivery to this mailbox: make it (only then, so that a delivery costs no mkdir calls).
    if (auto st = make_maildir(maildir, owner); !st) {
      error = {ErrorKind::kTemporary, st.error().message};
      return Error{st.error().message};
    }
    p.tmp_path.clear();
    create();
  }
  std::string where = p.tmp_path.empty() ? maildir + "/new (unnamed)" : p.tmp_path;
  auto fail = [&](std::string_view what, int err) -> Result<Pending> {
    abort(p);
    error = {error_kind_from_errno(err), fmt::format("{} {}: {}", what, where, std::strerror(err))};
    return Error{error.detail};
  };
  if (p.fd < 0) {
    int err = errno;
    p.tmp_path.clear();  // not ours: nothing for abort() to remove
    return fail("create", err);
  }
  if (int err = write_all(p.fd, parts); err != 0) return fail("write", err);
  if (owner.chown && ::fchown(p.fd, owner.uid, owner.gid) != 0) return fail("chown", errno);
  if (::fsync(p.fd) != 0) return fail("fsync", errno);
  if (!p.tmp_path.empty()) {
    int fd = std::exchange(p.fd, -1);
    if (::close(fd) != 0) return fail("close", errno);
  }
  return p;
}

Pending& Pending::operator=(Pending&& o) noexcept {
  if (this != &o) {
    if (fd >= 0) ::close(fd);
    maildir = std::move(o.maildir);
    tmp_path = std::move(o.tmp_path);
    name = std::move(o.name);
    size = o.size;
    fd = std::exchange(o.fd, -1);
  }
  return *this;
}

Pending::~Pending() {
  if (fd >= 0) ::close(fd);
}

Result<std::string> commit(Pending& pending, StoreError& error) {
  std::string final_path = pending.maildir + "/new/" + pending.name;
  std::string new_dir = pending.maildir + "/new";
  int err = pending.tmp_path.empty() ? link_durably(pending.fd, final_path, new_dir)
                                     : rename_durably(pending.tmp_path, final_path, new_dir);
  if (err != 0) {
    abort(pending);
    error = {error_kind_from_errno(err),
             fmt::format("put {} into new/ and fsync: {}", pending.name, std::strerror(err))};
    return Error{error.detail};
  }
  if (pending.fd >= 0) ::close(std::exchange(pending.fd, -1));
  // Keep the usage cache valid: our own delivery changed new/ by exactly this file.
  usage_changed(pending.maildir, static_cast<int64_t>(pending.size));
  return final_path;
}

void abort(Pending& pending) {
  if (pending.fd >= 0) ::close(std::exchange(pending.fd, -1));  // an unnamed file is gone with it
  if (!pending.tmp_path.empty()) ::unlink(pending.tmp_path.c_str());
}

}  // namespace postern::store::maildir

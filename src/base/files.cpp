#include "base/files.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "base/parallel.hpp"

namespace postern {

Result<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{fmt::format("{}: cannot read: {}", path, std::strerror(errno))};
  struct stat st;
  if (::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error{fmt::format("{}: cannot read: not a regular file", path)};
  }
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Error{fmt::format("{}: cannot read: {}", path, std::strerror(err))};
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status write_file_atomically(const std::string& path, const std::string& text, mode_t mode) {
  std::string tmp = path + ".tmp";
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error{fmt::format("{}: {}", tmp, std::strerror(errno))};
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return Error{fmt::format("{}: {}", path, std::strerror(err))};
  }
  return Ok{};
}

int write_all(int fd, const std::vector<std::string_view>& parts) {
  std::vector<iovec> iov;
  for (auto part : parts) iov.push_back({const_cast<char*>(part.data()), part.size()});
  size_t idx = 0;
  while (idx < iov.size()) {
    ssize_t n = ::writev(fd, iov.data() + idx, static_cast<int>(std::min<size_t>(iov.size() - idx, IOV_MAX)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    auto left = static_cast<size_t>(n);
    while (idx < iov.size() && left >= iov[idx].iov_len) left -= iov[idx++].iov_len;
    if (idx < iov.size()) {
      iov[idx].iov_base = static_cast<char*>(iov[idx].iov_base) + left;
      iov[idx].iov_len -= left;
    }
  }
  return 0;
}

int fsync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

std::vector<int> unlink_many(const std::vector<std::string>& paths) {
  std::vector<int> result(paths.size());
  parallel_for(paths.size(), 64, 8,
               [&](size_t i) { result[i] = ::unlink(paths[i].c_str()) == 0 ? 0 : errno; });
  return result;
}

namespace {

// Group commit of a directory (see rename_durably).
struct DirSync {
  std::mutex mutex;
  std::condition_variable done;
  uint64_t renamed = 0;  // renames and unlinks in the directory so far (sequence numbers)
  uint64_t synced = 0;   // every change up to this one is durable
  bool in_progress = false;
};

std::mutex g_dir_syncs_mutex;
std::map<std::string, std::shared_ptr<DirSync>> g_dir_syncs;

std::shared_ptr<DirSync> dir_sync(const std::string& dir) {
  std::lock_guard lock(g_dir_syncs_mutex);
  auto& entry = g_dir_syncs[dir];
  if (!entry) entry = std::make_shared<DirSync>();
  return entry;
}

// Runs `change` (a rename or unlink inside `dir`: 0 or an errno value), then waits until an fsync of `dir`
// that started after it has succeeded, starting one when none is under way.
template <class Change>
int change_durably(const std::string& dir, Change change) {
  auto ds = dir_sync(dir);
  std::unique_lock lock(ds->mutex);
  if (int err = change(); err != 0) return err;
  uint64_t mine = ++ds->renamed;
  while (ds->synced < mine) {
    if (ds->in_progress) {
      ds->done.wait(lock);
      continue;
    }
    ds->in_progress = true;
    uint64_t covers = ds->renamed;
    lock.unlock();
    int err = fsync_dir(dir);
    lock.lock();
    ds->in_progress = false;
    if (err == 0) ds->synced = std::max(ds->synced, covers);
    ds->done.notify_all();
    if (err != 0) return err;
  }
  return 0;
}

}  // namespace

int rename_durably(const std::string& from, const std::string& to, const std::string& dir) {
  return change_durably(dir, [&] { return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno; });
}

int link_durably(int fd, const std::string& to, const std::string& dir) {
  // The descriptor's own name in /proc: linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH.
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  return change_durably(dir, [&] {
    return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, to.c_str(), AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
  });
}

int unlink_durably(const std::string& path, const std::string& dir) {
  return change_durably(dir, [&] { return ::unlink(path.c_str()) == 0 ? 0 : errno; });
}

bool FileVersion::changed(const std::string& path, bool& exists) {
  struct stat st;
  exists = ::stat(path.c_str(), &st) == 0;
  if (!exists) {
    known_ = false;
    return false;
  }
  if (known_ && st.st_ino == inode_ && st.st_mtim.tv_sec == mtime_.tv_sec &&
      st.st_mtim.tv_nsec == mtime_.tv_nsec)
    return false;
  known_ = true;
  inode_ = st.st_ino;
  mtime_ = st.st_mtim;
  return true;
}

}  // namespace postern

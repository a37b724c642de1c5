#include "base/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

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

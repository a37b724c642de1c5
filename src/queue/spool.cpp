// queue/spool.cpp: queue files on disk (see spool.hpp).
// Security: works only on files in our own queue directories, named by ids checked by valid_queue_id() where
// they come from a command line; a damaged file is reported (and quarantined by the caller), never trusted.
#include "queue/spool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/log.hpp"

namespace postern::queue {
namespace {

constexpr QueueState kStates[] = {QueueState::kIncoming, QueueState::kActive, QueueState::kDeferred,
                                  QueueState::kHold, QueueState::kCorrupt};
constexpr QueueState kListed[] = {QueueState::kActive, QueueState::kDeferred, QueueState::kHold};
constexpr size_t kFirstRead = 64 * 1024;

// The envelope of the queue file at `path`: reads its first 64 KiB, more only while the envelope needs it.
Result<QueueFile> read_envelope(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Error{fmt::format("{}: {}", path, std::strerror(errno))};
  std::string bytes;
  size_t want = kFirstRead;
  while (true) {
    size_t have = bytes.size();
    bytes.resize(want);
    ssize_t n;
    do {
      n = ::pread(fd, bytes.data() + have, want - have, static_cast<off_t>(have));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Error{fmt::format("{}: {}", path, std::strerror(err))};
    }
    bytes.resize(have + static_cast<size_t>(n));
    auto d = decode(bytes, true);
    if (d || n == 0 || bytes.size() < want) {
      ::close(fd);
      if (!d) return Error{fmt::format("{}: {}", path, d.error().message)};
      return d->envelope;
    }
    want *= 2;
  }
}

}  // namespace

std::string_view state_name(QueueState s) {
  switch (s) {
    case QueueState::kIncoming:
      return "incoming";
    case QueueState::kActive:
      return "active";
    case QueueState::kDeferred:
      return "deferred";
    case QueueState::kHold:
      return "hold";
    case QueueState::kCorrupt:
      break;
  }
  return "corrupt";
}

bool valid_queue_id(std::string_view queue_id) {
  return !queue_id.empty() && queue_id.size() <= 32 &&
         std::all_of(queue_id.begin(), queue_id.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); });
}

std::string Spool::path(QueueState state, std::string_view queue_id) const {
  return fmt::format("{}/{}", directory(state), queue_id);
}

std::string Spool::directory(QueueState state) const {
  return fmt::format("{}/{}", dir_, state_name(state));
}

std::vector<std::string> Spool::directories() const {
  std::vector<std::string> out;
  for (QueueState s : kStates) out.push_back(directory(s));
  return out;
}

Status Spool::create_directories() const {
  for (const std::string& d : directories()) {
    if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
      return Error{fmt::format("queue_directory: cannot create {}: {}", d, std::strerror(errno))};
  }
  return Ok{};
}

bool Spool::write_incoming(const QueueFile& q, const std::vector<std::string_view>& message,
                           store::StoreError& error) const {
  std::string p = path(QueueState::kIncoming, q.queue_id);
  auto fail = [&](std::string_view what, int err) {
    error = {store::error_kind_from_errno(err), fmt::format("{} {}: {}", what, p, std::strerror(err))};
    ::unlink(p.c_str());
    return false;
  };
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int err = errno;
    error = {store::error_kind_from_errno(err), fmt::format("create {}: {}", p, std::strerror(err))};
    return false;
  }
  uint64_t size = 0;
  for (auto part : message) size += part.size();
  std::string head = encode_head(q, size);
  std::vector<std::string_view> parts = {head};
  parts.insert(parts.end(), message.begin(), message.end());
  parts.push_back(kQueueFileTrailer);
  int err = write_all(fd, parts);
  // Written by root (`postern sendmail` from cron): the file belongs to the queue's owner (mail_owner), who
  // runs the queue manager, as Postfix's postdrop hands files over.
  struct stat dir_st;
  if (err == 0 && ::geteuid() == 0 && ::stat(directory(QueueState::kIncoming).c_str(), &dir_st) == 0 &&
      dir_st.st_uid != 0 && ::fchown(fd, dir_st.st_uid, dir_st.st_gid) != 0)
    err = errno;
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) return fail("write and fsync", err);
  return true;
}

bool Spool::commit(std::string_view queue_id, store::StoreError& error) const {
  std::string from = path(QueueState::kIncoming, queue_id);
  std::string to = path(QueueState::kDeferred, queue_id);
  if (int err = rename_durably(from, to, directory(QueueState::kDeferred)); err != 0) {
    error = {store::error_kind_from_errno(err),
             fmt::format("rename {} into deferred/ and fsync: {}", from, std::strerror(err))};
    ::unlink(from.c_str());
    return false;
  }
  return true;
}

void Spool::abort(std::string_view queue_id) const {
  ::unlink(path(QueueState::kIncoming, queue_id).c_str());
}

std::vector<ListedMessage> Spool::list(std::vector<std::string>& problems) const {
  std::vector<ListedMessage> out;
  for (QueueState s : kListed) {
    auto names = ids(s);
    if (!names) {
      problems.push_back(names.error().message);
      continue;
    }
    for (const std::string& id : *names) {
      auto env = read_envelope(path(s, id));
      if (!env) {
        problems.push_back(env.error().message);
        continue;
      }
      out.push_back({s, std::move(*env)});
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const ListedMessage& a, const ListedMessage& b) {
    return a.envelope.arrival < b.envelope.arrival;
  });
  return out;
}

Result<std::vector<std::string>> Spool::ids(QueueState state) const {
  std::string d = directory(state);
  std::vector<std::string> out;
  DIR* dir = ::opendir(d.c_str());
  if (!dir) {
    if (errno == ENOENT) return out;
    return Error{fmt::format("{}: {}", d, std::strerror(errno))};
  }
  while (dirent* e = ::readdir(dir))
    if (valid_queue_id(e->d_name)) out.emplace_back(e->d_name);
  ::closedir(dir);
  return out;
}

Result<bool> Spool::move(std::string_view queue_id, QueueState from, QueueState to, bool durable) const {
  std::string src = path(from, queue_id);
  std::string dst = path(to, queue_id);
  int err = durable                                   ? rename_durably(src, dst, directory(to))
            : ::rename(src.c_str(), dst.c_str()) == 0 ? 0
                                                      : errno;
  if (err != 0) {
    // ENOENT also when `to`'s directory is missing: only a missing source is "no such file".
    if (err == ENOENT && ::access(src.c_str(), F_OK) != 0) return false;
    return Error{fmt::format("rename {} into {}/: {}", src, state_name(to), std::strerror(err))};
  }
  if (!durable) return true;
  if (int err = fsync_dir(directory(from)); err != 0)
    return Error{fmt::format("fsync {}: {}", directory(from), std::strerror(err))};
  return true;
}

Result<bool> Spool::remove(std::string_view queue_id, QueueState state) const {
  std::string p = path(state, queue_id);
  if (int err = unlink_durably(p, directory(state)); err != 0) {
    if (err == ENOENT) return false;
    return Error{fmt::format("remove {} and fsync: {}", p, std::strerror(err))};
  }
  return true;
}

Result<bool> Spool::touch(std::string_view queue_id, QueueState state,
                          std::chrono::system_clock::time_point when) const {
  std::string p = path(state, queue_id);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  timespec t{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  timespec times[2] = {t, t};  // atime, mtime
  if (::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    return Error{fmt::format("set the time of {}: {}", p, std::strerror(errno))};
  }
  return true;
}

void Spool::quarantine(std::string_view queue_id, QueueState state, std::string_view why) const {
  auto moved = move(queue_id, state, QueueState::kCorrupt);
  if (!moved)
    log::error("qmgr", "{}: corrupt queue file, cannot move it to corrupt/: {}", queue_id,
               moved.error().message);
  else if (*moved)
    log::warning("qmgr", "{}: corrupt queue file moved from {}/ to corrupt/: {}", queue_id, state_name(state),
                 why);
}

}  // namespace postern::queue

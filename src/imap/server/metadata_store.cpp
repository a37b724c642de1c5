// imap/server/metadata_store.cpp: METADATA files in the user's Maildir (RFC 5464); see metadata_store.hpp.
// Security: the file is opened without following symlinks, must be a regular file of at most
// kMaxMetadataFile bytes, and is decoded by the bounded decoder of imap/proto/metadata.

#include "imap/server/metadata_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/log.hpp"

namespace postern::imap::server {
namespace {

// A descriptor closed at the end of its scope.
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

Error io_error(const std::string& what) {
  return Error{fmt::format("{}: {}", what, std::strerror(errno))};
}

// The file `name` in the open directory `dirfd` (a missing file holds none).
Result<proto::MetadataEntries> load_at(int dirfd, const std::string& path, std::string_view name) {
  OwnedFd fd(::openat(dirfd, std::string(name).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return proto::MetadataEntries{};
    return io_error(path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return io_error(path);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file"};
  if (static_cast<uint64_t>(st.st_size) > kMaxMetadataFile)
    return Error{fmt::format("{}: larger than {} bytes", path, kMaxMetadataFile)};
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(path);
    if (n == 0) break;  // shrank meanwhile: what was read is decoded
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  proto::MetadataFile file = proto::decode_metadata_file(text, kMaxMetadataFileEntries);
  if (file.damaged)
    log::warning("imap", "{}: damaged ({}); its first {} entries are used", path, file.error,
                 file.entries.size());
  return std::move(file.entries);
}

// Replaces the file `name` in `dirfd` with `text` durably; removes it when `text` is empty.
Result<Ok> replace_at(int dirfd, const std::string& dir, std::string_view name, const std::string& text,
                      const store::maildir::Owner& owner) {
  std::string file(name), tmp = file + ".tmp";
  if (text.empty()) {
    if (::unlinkat(dirfd, file.c_str(), 0) != 0 && errno != ENOENT) return io_error(dir + "/" + file);
  } else {
    OwnedFd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0) return io_error(dir + "/" + tmp);
    bool written = (!owner.chown || ::fchown(fd.get(), owner.uid, owner.gid) == 0) &&
                   write_all(fd.get(), {text}) == 0 && ::fsync(fd.get()) == 0;
    if (!written || ::renameat(dirfd, tmp.c_str(), dirfd, file.c_str()) != 0) {
      Error e = io_error(dir + "/" + tmp);
      ::unlinkat(dirfd, tmp.c_str(), 0);
      return e;
    }
  }
  if (::fsync(dirfd) != 0) return io_error(dir);
  return Ok{};
}

}  // namespace

Result<proto::MetadataEntries> load_metadata(const std::string& dir, std::string_view name) {
  OwnedFd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirfd.get() < 0) return io_error(dir);
  return load_at(dirfd.get(), fmt::format("{}/{}", dir, name), name);
}

Result<MetadataUpdate> update_metadata(const std::string& dir, std::string_view name,
                                       const MetadataChanges& changes, size_t max_entries,
                                       const store::maildir::Owner& owner) {
  OwnedFd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirfd.get() < 0) return io_error(dir);
  // The lock goes with the descriptor: released when it is closed, also on every early return.
  while (::flock(dirfd.get(), LOCK_EX) != 0)
    if (errno != EINTR) return io_error(dir);
  Result<proto::MetadataEntries> entries = load_at(dirfd.get(), fmt::format("{}/{}", dir, name), name);
  if (!entries) return entries.error();
  size_t before = entries->size();
  for (const auto& [entry, value] : changes) {
    if (value)
      (*entries)[entry] = *value;
    else
      entries->erase(entry);
  }
  MetadataUpdate update;
  if (entries->size() > max_entries && entries->size() > before) {
    update.too_many = true;
    return update;
  }
  std::string text = entries->empty() ? std::string() : proto::encode_metadata_file(*entries);
  if (auto done = replace_at(dirfd.get(), dir, name, text, owner); !done) return done.error();
  return update;
}

}  // namespace postern::imap::server

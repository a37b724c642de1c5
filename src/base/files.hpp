// base/files.hpp: whole-file reads, atomic replacement (temporary file, fsync, rename), durable writes and
// renames (Maildir deliveries, queue files), and change tracking for tables that are re-read when their file
// changes (aliases, passwd-file).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace postern {

// The file's bytes; an error names the file and the reason.
Result<std::string> read_file(const std::string& path);
// Replaces `path` with `text`: write PATH.tmp, fsync, rename. Keeps the old file's mode, else uses `mode`.
Status write_file_atomically(const std::string& path, const std::string& text, mode_t mode);

// Writes every part to `fd` (writev; short writes and EINTR retried): 0, or an errno value.
int write_all(int fd, const std::vector<std::string_view>& parts);
// fsync of a directory (makes the names in it durable): 0, or an errno value.
int fsync_dir(const std::string& path);
// Removes every file of `paths`, on several threads when there are many (each unlink may wait for the disk,
// e.g. for the discard of the freed blocks with the `discard` mount option; the waits then overlap). One
// errno value per path, 0 where it was removed.
std::vector<int> unlink_many(const std::vector<std::string>& paths);
// Renames `from` to `to` (inside `dir`) and returns once the rename is durable: 0, or an errno value. Group
// commit: one fsync of `dir` covers every rename into it that finished before the fsync started, so
// concurrent writers into one directory share fsyncs instead of queueing for one each.
int rename_durably(const std::string& from, const std::string& to, const std::string& dir);
// Removes `path` (inside `dir`) and returns once the removal is durable, with the same group commit: 0, or an
// errno value.
int unlink_durably(const std::string& path, const std::string& dir);
// Gives the unnamed file `fd` (open(O_TMPFILE)) the name `to` (inside `dir`) and returns once that is
// durable, with the same group commit: 0, or an errno value (EEXIST: `to` exists already).
int link_durably(int fd, const std::string& to, const std::string& dir);

// Tells whether a file changed (inode or mtime) since the last call that returned true.
class FileVersion {
 public:
  // False when the file cannot be stat'ed (then `exists` is false).
  bool changed(const std::string& path, bool& exists);

 private:
  bool known_ = false;
  ino_t inode_ = 0;
  timespec mtime_{};
};

}  // namespace postern

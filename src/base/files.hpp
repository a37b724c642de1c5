// base/files.hpp: whole-file reads, atomic replacement (temporary file, fsync, rename), and change tracking
// for tables that are re-read when their file changes (aliases, passwd-file).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "base/result.hpp"

namespace postern {

// The file's bytes; an error names the file and the reason.
Result<std::string> read_file(const std::string& path);
// Replaces `path` with `text`: write PATH.tmp, fsync, rename. Keeps the old file's mode, else uses `mode`.
Status write_file_atomically(const std::string& path, const std::string& text, mode_t mode);

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

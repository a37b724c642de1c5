// store/maildir/maildir.hpp: Maildir delivery (write, fsync, then into new/ and fsync new/), unique names in
// Dovecot's form ("<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<crlf size>"), Maildir++ folders, usage.
// Delivery is two-phase so that a message for several mailboxes is either in all of them or in none:
// write_tmp() for each, then commit() each (it writes no data: only a name into new/), or abort().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "store/error.hpp"

namespace postern::store::maildir {

// Who owns a Maildir's files: the process itself (chown = false) or a system user (needs root).
struct Owner {
  bool chown = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Creates the directory `path` (mode `mode`, owned by `owner`) and missing parents (0755).
Status make_directory(const std::string& path, mode_t mode, const Owner& owner);
// Creates `path` and its cur/ new/ tmp/ (mode 0700) and missing parents; existing ones are left alone.
Status make_maildir(const std::string& path, const Owner& owner);
// Creates the Maildir++ folder `.NAME` in the Maildir `root`, with a maildirfolder marker as Dovecot does.
Status make_folder(const std::string& root, std::string_view name, const Owner& owner);

// A CRLF size not counted yet: the file's name and the uidlist did not give it, and nobody read the file for
// it (Mailbox::count_vsizes does).
inline constexpr uint64_t kUnknownVsize = UINT64_MAX;
// A unique file name for a new message, `size` bytes on disk and `crlf_size` bytes with CRLF line ends
// (",W=" left out when kUnknownVsize).
std::string unique_name(uint64_t size, uint64_t crlf_size);
// Size of `content` with every LF counted as CRLF (bare LFs become CRLF on the wire).
uint64_t crlf_size(std::string_view content);

// A message written and fsync'd, not delivered yet. Destroying it closes the unnamed file (which drops it),
// but leaves a file in tmp/ (abort() removes that).
struct Pending {
  std::string maildir;
  std::string tmp_path;  // the file in tmp/, or empty: the message is the unnamed file `fd`
  std::string name;
  uint64_t size = 0;
  int fd = -1;  // an O_TMPFILE file of new/: in no directory (nobody sees it) until commit() names it

  Pending() = default;
  Pending(Pending&& o) noexcept { *this = std::move(o); }
  Pending& operator=(Pending&& o) noexcept;
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;
  ~Pending();
};

// Phase one: the message (the concatenation of `parts`) written and fsync'd, as a file without a name in the
// directory new/ (O_TMPFILE; nothing to clean up after a crash), or in tmp/ where the file system cannot.
// `size_limit` (0: none) is mailbox_size_limit: refused with kQuotaExceeded when the Maildir would grow past
// it.
Result<Pending> write_tmp(const std::string& maildir, const std::vector<std::string_view>& parts,
                          const Owner& owner, uint64_t size_limit, StoreError& error);
// Phase two: link or rename into new/ and fsync new/. Returns the final path.
Result<std::string> commit(Pending& pending, StoreError& error);
void abort(Pending& pending);

// Bytes in the messages of the Maildir (INBOX and folders), from the S= of file names where present.
// Cached; the cache follows the root's new/ and cur/ times, and usage_changed().
uint64_t usage(const std::string& maildir);
// Tells the usage cache of `maildir` (a Maildir root) that this process added (or, negative, removed)
// `delta` bytes in it or in one of its folders: no rescan of the whole tree for the next usage().
void usage_changed(const std::string& maildir, int64_t delta);

}  // namespace postern::store::maildir

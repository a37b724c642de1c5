// store/maildir/maildir.hpp: Maildir delivery (tmp -> fsync -> rename into new -> fsync new), unique names in
// Dovecot's form ("<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<crlf size>"), Maildir++ folders, usage.
// Delivery is two-phase so that a message for several mailboxes is either in all of them or in none:
// write_tmp() for each, then commit() each (rename cannot fail for lack of space), or abort().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
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

struct Pending {
  std::string maildir;
  std::string tmp_path;
  std::string name;
  uint64_t size = 0;
};

// Phase one: the message (the concatenation of `parts`) written and fsync'd in tmp/.
// `size_limit` (0: none) is mailbox_size_limit: refused with kQuotaExceeded when the Maildir would grow past
// it.
Result<Pending> write_tmp(const std::string& maildir, const std::vector<std::string_view>& parts,
                          const Owner& owner, uint64_t size_limit, StoreError& error);
// Phase two: rename into new/ and fsync new/. Returns the final path.
Result<std::string> commit(const Pending& pending, StoreError& error);
void abort(const Pending& pending);

// Bytes in the messages of the Maildir (INBOX and folders), from the S= of file names where present.
// Cached; the cache follows the root's new/ and cur/ times, and usage_changed().
uint64_t usage(const std::string& maildir);
// Tells the usage cache of `maildir` (a Maildir root) that this process added (or, negative, removed)
// `delta` bytes in it or in one of its folders: no rescan of the whole tree for the next usage().
void usage_changed(const std::string& maildir, int64_t delta);

}  // namespace postern::store::maildir

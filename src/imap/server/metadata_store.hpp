// imap/server/metadata_store.hpp: METADATA entries on disk (RFC 5464). A mailbox's entries are the file
// "postern-metadata" in its Maildir folder (INBOX's at the Maildir root), so that DELETE removes them with
// the folder and RENAME carries them along; the server's entries ("" mailbox) are the file
// "postern-server-metadata" at the root. The format is imap/proto/metadata's.
// An update reads, changes and replaces the file under an exclusive flock of its directory (sessions of
// one user in several processes write one at a time): PATH.tmp written, fsync'd, renamed over PATH, the
// directory fsync'd, so that a crash leaves the old file or the new one, never a mix.
// Security: the file is inside the user's Maildir and read as untrusted: at most kMaxMetadataFile bytes,
// decoded by the bounded decoder; a damaged file gives the entries before the damage (logged), and the
// next update rewrites it whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "imap/proto/metadata.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::imap::server {

constexpr std::string_view kMailboxMetadataFile = "postern-metadata";
constexpr std::string_view kServerMetadataFile = "postern-server-metadata";
constexpr uint64_t kMaxMetadataFile = 64 * 1024 * 1024;
constexpr size_t kMaxMetadataFileEntries = 100000;

// The entries of the file `name` in the directory `dir`; a missing file holds none.
Result<proto::MetadataEntries> load_metadata(const std::string& dir, std::string_view name);

// Sets (a value) or removes (nullopt) entries, in order, as one update. Refused (too_many, nothing written)
// when the file would hold more than `max_entries` entries and more than it holds now.
using MetadataChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;
struct MetadataUpdate {
  bool too_many = false;
};
Result<MetadataUpdate> update_metadata(const std::string& dir, std::string_view name,
                                       const MetadataChanges& changes, size_t max_entries,
                                       const store::maildir::Owner& owner);

}  // namespace postern::imap::server

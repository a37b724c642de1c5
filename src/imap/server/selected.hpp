// imap/server/selected.hpp: a session's view of its selected mailbox (private to imap/server).
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "imap/server/session.hpp"

namespace postern::imap::server {

struct Session::Selected {
  std::shared_ptr<store::maildir::Mailbox> mailbox;
  std::string name;
  bool read_only = false;
  std::vector<uint32_t> uids;                                // sequence number i+1 -> uid
  std::shared_ptr<const store::maildir::Snapshot> reported;  // the state this session last reported
  std::set<uint32_t> recent;
  std::vector<std::string> keywords;  // keyword names last announced in FLAGS
  std::vector<uint32_t> saved;        // SEARCHRES "$"
  std::set<uint32_t> silent;          // our own STORE .SILENT changes, not to be reported back
  int watch = -1;
};

// The header of message `uid` (proto::root_header_end): from the index's cache, else cut from `content` (the
// message, or null to read it) and cached. Nothing when the message is gone.
std::optional<std::string> cached_header(store::maildir::Mailbox& mailbox, uint32_t uid,
                                         const std::string* content);

}  // namespace postern::imap::server

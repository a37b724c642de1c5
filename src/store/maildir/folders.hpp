// store/maildir/folders.hpp: the folders of one user's Maildir++ (Dovecot's LAYOUT=maildir++): INBOX is
// the root; folder "Archive/2024" (hierarchy separator '/', configurable) is the directory ".Archive.2024",
// its name modified-UTF-7 encoded on disk exactly as Dovecot stores it. Subscriptions in the "subscriptions"
// file in Dovecot's format. Names here are IMAP names in UTF-8 with the configured separator.
// Security: names come from the network. Nothing outside the user's Maildir is ever touched: a name that
// could escape it or collide with Maildir's own entries ("..", "/", "~" first, empty levels, CR/LF/NUL and
// other controls, invalid UTF-8, the on-disk separator '.') is refused with kInvalidName. Levels named
// "cur", "new" or "tmp" are allowed as Dovecot allows them: ".cur" cannot collide with cur/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::store::maildir {

enum class FolderError { kNone, kInvalidName, kExists, kNotFound, kHasChildren, kIo };

struct FolderResult {
  FolderError error = FolderError::kNone;
  std::string detail;  // for the log and the NO text
  bool ok() const { return error == FolderError::kNone; }
};

class Folders {
 public:
  Folders(std::string root, char separator, Owner owner);

  // The Maildir directory of the mailbox `name` ("INBOX", case-insensitive, is the root). Refuses invalid
  // names. Does not check existence.
  Result<std::string> path_of(std::string_view name) const;
  // Every mailbox that exists, INBOX first, then the rest sorted; names with the separator. A parent that
  // exists only because a child does ("a" of ".a.b") is listed in `nonexistent` instead.
  struct Listing {
    std::vector<std::string> mailboxes;
    std::vector<std::string> nonexistent;
  };
  Listing list() const;
  bool exists(std::string_view name) const;

  // CREATE: the Maildir++ folder with cur/ new/ tmp/ and the maildirfolder marker. Creating "a/b" creates
  // "a" only implicitly (as Dovecot).
  FolderResult create(std::string_view name);
  // DELETE: removes the folder and its messages (children stay). INBOX cannot be deleted.
  FolderResult remove(std::string_view name);
  // RENAME with its children. Renaming INBOX moves its messages into the new folder; INBOX stays, empty.
  FolderResult rename(std::string_view from, std::string_view to);

  std::vector<std::string> subscriptions() const;
  // Subscribing needs an existing mailbox (kNotFound, as Dovecot); DELETE and RENAME keep subscriptions.
  FolderResult subscribe(std::string_view name, bool on);

  // First login: the guide's folders (Drafts, Sent, Trash, Templates) and any configured extra ones.
  void ensure_defaults(const std::vector<std::string>& names);

 private:
  std::string root_;
  char separator_;
  Owner owner_;
};

}  // namespace postern::store::maildir

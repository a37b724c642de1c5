// store/maildir/mailbox.hpp: one Maildir++ mailbox (INBOX or a folder) as IMAP and POP3 see it: messages
// with UIDs, flags and keywords, in Dovecot's own layout so that Dovecot and Postern serve the same Maildir
// in turn without a UID changing:
//   - UIDs and UIDVALIDITY in dovecot-uidlist (version 3), rewritten under dovecot-uidlist.lock (Dovecot's
//     dotlock) by write-to-lock-file + fsync + rename;
//   - flags in the ":2,<flags>" suffix of the file name (D F P R S T, keywords as a..z);
//   - keyword names in dovecot-keywords ("<index> <name>" lines);
//   - new/ moved to cur/ when a mailbox is synced (as Dovecot does when not read-only).
// Beside them, Postern's own cache file (postern-index): sizes, internal date, modseq, cached FETCH items
// (envelope, bodystructure). It is only a cache: deleting it loses nothing (modseqs restart higher than any
// value handed out before, so CONDSTORE clients resync rather than miss changes).
// Crash safety: a message is never lost and a UID is never reused, whatever instant the process dies.
// Thread-safety: one Mailbox object per directory per process (Mailbox::open returns the shared instance);
// every method may be called from any thread (an internal mutex). Sessions read immutable snapshots.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "store/error.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::store::maildir {

// System flags, as bits.
enum Flag : uint8_t {
  kSeen = 1,
  kAnswered = 2,
  kFlagged = 4,
  kDeleted = 8,
  kDraft = 16,
};

// Text shared by every snapshot that holds it: a mailbox publishes a new snapshot for each change, and
// copying a MessageMeta then copies no characters (appending to a mailbox of n messages copied 2n strings).
using SharedText = std::shared_ptr<const std::string>;
inline SharedText shared_text(std::string text) {
  return std::make_shared<const std::string>(std::move(text));
}

struct MessageMeta {
  uint32_t uid = 0;
  uint8_t flags = 0;          // Flag bits
  uint32_t keywords = 0;      // bit i: keyword i of Mailbox::keywords() (at most 26, Maildir's a..z)
  uint64_t size = 0;          // bytes on disk
  uint64_t vsize = 0;         // bytes with CRLF line ends, or kUnknownVsize: see rfc822_size
  int64_t internal_date = 0;  // seconds since the epoch (the file's mtime, as Dovecot), or kUnknownDate
  int64_t save_date = 0;      // when it was added to this mailbox (SAVEDATE, RFC 8514)
  uint64_t modseq = 1;        // CONDSTORE: last change of this message's flags (or its arrival)
  SharedText name;            // file name without the ":2," suffix (the dovecot-uidlist key)
  SharedText path;            // full path of the file now
};

// RFC822.SIZE: the vsize, or the size on disk while it is not counted (Mailbox::count_vsizes, called first by
// whoever shows sizes, counts it; a file gone before that keeps its size).
inline uint64_t rfc822_size(const MessageMeta& m) {
  return m.vsize != kUnknownVsize ? m.vsize : m.size;
}

// A date not looked up yet: a sync stats no file whose name tells its size (S=), and takes the internal date
// from the file only when asked (Mailbox::stat_dates).
inline constexpr int64_t kUnknownDate = std::numeric_limits<int64_t>::min();

// INTERNALDATE: the internal date, or the save date while it is not known (Mailbox::stat_dates, called first
// by whoever shows or compares dates, learns it; a file gone before that keeps its save date).
inline int64_t arrival_date(const MessageMeta& m) {
  return m.internal_date != kUnknownDate ? m.internal_date : m.save_date;
}

// Messages in UID order, immutable, in shared chunks of kChunk: the list a snapshot publishes after a change
// shares every chunk that did not change with the one before (an APPEND to a mailbox of n messages copied
// all n before). Read like a const std::vector.
class MessageList {
 public:
  static constexpr size_t kChunk = 256;

  class const_iterator {
   public:
    using iterator_concept = std::random_access_iterator_tag;
    using iterator_category = std::random_access_iterator_tag;
    using value_type = MessageMeta;
    using difference_type = std::ptrdiff_t;
    using pointer = const MessageMeta*;
    using reference = const MessageMeta&;

    const_iterator() = default;
    const_iterator(const MessageList* list, size_t i) : list_(list), i_(i) {}
    reference operator*() const { return (*list_)[i_]; }
    pointer operator->() const { return &(*list_)[i_]; }
    reference operator[](difference_type n) const { return (*list_)[i_ + n]; }
    const_iterator& operator++() { return ++i_, *this; }
    const_iterator operator++(int) { return {list_, i_++}; }
    const_iterator& operator--() { return --i_, *this; }
    const_iterator operator--(int) { return {list_, i_--}; }
    const_iterator& operator+=(difference_type n) { return i_ += n, *this; }
    const_iterator& operator-=(difference_type n) { return i_ -= n, *this; }
    friend const_iterator operator+(const_iterator it, difference_type n) { return it += n; }
    friend const_iterator operator+(difference_type n, const_iterator it) { return it += n; }
    friend const_iterator operator-(const_iterator it, difference_type n) { return it -= n; }
    friend difference_type operator-(const const_iterator& a, const const_iterator& b) {
      return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
    }
    friend bool operator==(const const_iterator& a, const const_iterator& b) { return a.i_ == b.i_; }
    friend auto operator<=>(const const_iterator& a, const const_iterator& b) { return a.i_ <=> b.i_; }

   private:
    const MessageList* list_ = nullptr;
    size_t i_ = 0;
  };

  MessageList() = default;
  // `all` in chunks, sharing those equal to `before`'s at the same place.
  explicit MessageList(const std::vector<MessageMeta>& all, const MessageList* before = nullptr);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const MessageMeta& operator[](size_t i) const { return (*chunks_[i / kChunk])[i % kChunk]; }
  const MessageMeta& front() const { return (*this)[0]; }
  const MessageMeta& back() const { return (*this)[size_ - 1]; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size_}; }

 private:
  std::vector<std::shared_ptr<const std::vector<MessageMeta>>> chunks_;
  size_t size_ = 0;
};

// The mailbox at one instant; never changes once published (a change publishes a new one).
struct Snapshot {
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 1;
  uint64_t highest_modseq = 1;
  std::vector<std::string> keywords;  // index = keyword bit
  MessageList messages;               // sorted by uid
  // Expunges as (uid, modseq of the expunge), for QRESYNC VANISHED (EARLIER); may be trimmed, oldest first.
  std::vector<std::pair<uint32_t, uint64_t>> expunged;
  const MessageMeta* find(uint32_t uid) const;  // binary search; null when absent
  // The same, at once for UIDs looked up in ascending order: `next` (0 at first) is one past where the
  // UID before was found, and is tried first.
  const MessageMeta* find(uint32_t uid, size_t& next) const;
};

enum class FlagOp { kSet, kAdd, kRemove };

// kHeader: the message's header as stored, up to and with its first empty line (header searches and
// BODY[HEADER...] fetches read it instead of the file).
enum class CacheField { kEnvelope, kBodyStructure, kBody, kBinarySize, kHeader };

class Mailbox {
 public:
  // The shared instance for `maildir` (created, with cur/ new/ tmp/, when `create` and missing).
  // Files written are owned by `owner`. The mailboxes opened last stay open for a while after their last
  // user lets go (the next session only stats the directories).
  static Result<std::shared_ptr<Mailbox>> open(const std::string& maildir, const Owner& owner,
                                               bool create = false);
  // After a delivery into `maildir` by someone else (delivery/local): syncs the open instance, if any, so
  // that watchers hear of the new message. Cheap when nobody watches the mailbox.
  static void notify_changed(const std::string& maildir);
  // A folder at `maildir` was deleted or renamed (with its Maildir++ children, "<maildir>.*"): the instances
  // kept open after their last session (see open()) are dropped, so that a folder made again under the name
  // starts from its own directory.
  static void forget(const std::string& maildir);

  ~Mailbox();
  const std::string& path() const;

  // Brings the snapshot up to date with the directory (new files get UIDs; files gone are expunged; flags
  // changed by other programs get a new modseq). Cheap when nothing changed (directory mtimes).
  StoreError sync();
  std::shared_ptr<const Snapshot> snapshot() const;

  // Adds a message (tmp -> fsync -> rename into cur/ -> fsync) with flags, keywords and internal date
  // (0: now). `uid` gets the new UID. `size_limit` as mailbox_size_limit (0: none).
  StoreError append(std::string_view content, uint8_t flags, const std::vector<std::string>& keywords,
                    int64_t internal_date, uint64_t size_limit, uint32_t& uid);
  // Changes flags of `uids` (absent ones are skipped). `unchanged_since` (CONDSTORE; 0: none): messages
  // whose modseq is higher are left alone and listed in `failed`. A keyword not yet known is added to
  // dovecot-keywords (NO when that would be the 27th).
  StoreError store(const std::vector<uint32_t>& uids, FlagOp op, uint8_t flags,
                   const std::vector<std::string>& keywords, uint64_t unchanged_since,
                   std::vector<uint32_t>* failed = nullptr);
  // Removes the messages (unlink; the UIDs are never used again).
  StoreError expunge(const std::vector<uint32_t>& uids);
  // Copies the messages into `dest` (hard link when possible, else copy + fsync), keeping flags, keywords
  // and internal date; `new_uids[i]` is the UID in `dest` of `uids[i]` (for COPYUID). Absent UIDs skipped.
  StoreError copy_to(const std::vector<uint32_t>& uids, Mailbox& dest, std::vector<uint32_t>& copied,
                     std::vector<uint32_t>& new_uids);
  // The message's bytes as stored. kPermanent-free: a file gone meanwhile gives kTemporary ("expunged").
  Result<std::string> read(uint32_t uid) const;
  // Makes the vsize of the messages of `uids` known where it is not yet (a file whose name has no W=, from
  // another program: a sync does not read files), reading their files on several threads when many, and
  // publishes them: a snapshot taken afterwards has them. Files gone meanwhile keep kUnknownVsize.
  void count_vsizes(const std::vector<uint32_t>& uids);
  // The same for every message (STATUS SIZE, a POP3 maildrop).
  void count_vsizes();
  // Records vsizes counted by a caller that read the files anyway (FETCH): (uid, vsize) pairs.
  void set_vsizes(const std::vector<std::pair<uint32_t, uint64_t>>& vsizes);
  // Makes the internal date (the file's mtime) of the messages of `uids` known where it is not yet, looking
  // at their files on several threads when many, and publishes them (see kUnknownDate).
  void stat_dates(const std::vector<uint32_t>& uids);

  // Postern's cache of computed FETCH items, kept in postern-index.
  std::optional<std::string> cached(uint32_t uid, CacheField field) const;
  // The same for many messages at once (one lock: sessions searching one mailbox side by side).
  std::vector<std::optional<std::string>> cached(const std::vector<uint32_t>& uids, CacheField field) const;
  // Caches a FETCH item; cached() has it at once, the index file after write_cache() (or when many are
  // queued, or when the mailbox closes).
  void put_cache(uint32_t uid, CacheField field, std::string value);
  // Writes the cache records put_cache() queued into the index (one write for a whole FETCH).
  void write_cache();

  // \Recent (IMAP4rev1): the first caller to ask about a UID at or above the mark gets it. Returns the old
  // mark and moves it to `uidnext`.
  uint32_t take_recent(uint32_t uidnext);

  // `on_change` is called (from any thread, without locks held) after every change published by anyone.
  // Returns an id for unwatch().
  int watch(std::function<void()> on_change);
  void unwatch(int id);

 private:
  struct Impl;
  explicit Mailbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace postern::store::maildir

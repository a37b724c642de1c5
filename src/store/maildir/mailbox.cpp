// store/maildir/mailbox.cpp: Mailbox over a Maildir in Dovecot's layout (dovecot-uidlist, dovecot-keywords,
// ":2," flags) plus Postern's own cache file, postern-index: an append-only log of length-prefixed,
// checksummed records (message metadata, cached FETCH items, expunges, highest modseq, \Recent mark),
// truncated at the first damaged record on load and compacted when most of it is dead. Modseqs are
// max(highest + 1, now in microseconds), so they stay above every value handed out even when the index is
// lost. Lock order: Mailbox::Impl::mu_ (one mailbox at a time) -> dovecot-uidlist.lock; watchers are called
// with no lock held.
#include "store/maildir/mailbox.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/parallel.hpp"
#include "store/maildir/uidlist.hpp"

namespace postern::store::maildir {

namespace {

// Puts `messages` back in UID order after messages were added at its end; the first `kept` were in order, so
// only the added ones, from the last kept one on, need a look.
void sort_added(std::vector<MessageMeta>& messages, size_t kept) {
  auto by_uid = [](const MessageMeta& a, const MessageMeta& b) { return a.uid < b.uid; };
  if (!std::is_sorted(messages.begin() + static_cast<std::ptrdiff_t>(kept > 0 ? kept - 1 : 0), messages.end(),
                      by_uid))
    std::sort(messages.begin(), messages.end(), by_uid);
}

bool same_meta(const MessageMeta& a, const MessageMeta& b) {
  return a.uid == b.uid && a.flags == b.flags && a.keywords == b.keywords && a.size == b.size &&
         a.vsize == b.vsize && a.internal_date == b.internal_date && a.save_date == b.save_date &&
         a.modseq == b.modseq && a.name == b.name && a.path == b.path;
}

}  // namespace

MessageList::MessageList(const std::vector<MessageMeta>& all, const MessageList* before) : size_(all.size()) {
  chunks_.reserve((all.size() + kChunk - 1) / kChunk);
  for (size_t start = 0; start < all.size(); start += kChunk) {
    auto first = all.begin() + static_cast<std::ptrdiff_t>(start);
    auto last = first + static_cast<std::ptrdiff_t>(std::min(kChunk, all.size() - start));
    size_t k = chunks_.size();
    if (before && k < before->chunks_.size()) {
      const auto& old = before->chunks_[k];
      if (old->size() == static_cast<size_t>(last - first) &&
          std::equal(first, last, old->begin(), same_meta)) {
        chunks_.push_back(old);
        continue;
      }
    }
    chunks_.push_back(std::make_shared<const std::vector<MessageMeta>>(first, last));
  }
}

const MessageMeta* Snapshot::find(uint32_t uid) const {
  size_t ignored = 0;
  return find(uid, ignored);
}

const MessageMeta* Snapshot::find(uint32_t uid, size_t& next) const {
  if (next < messages.size() && messages[next].uid == uid) return &messages[next++];
  auto it = std::lower_bound(messages.begin(), messages.end(), uid,
                             [](const MessageMeta& m, uint32_t u) { return m.uid < u; });
  if (it == messages.end() || it->uid != uid) return nullptr;
  next = static_cast<size_t>(it - messages.begin()) + 1;
  return &*it;
}

namespace {

constexpr int kLockStaleSeconds = 120;  // Dovecot's stale timeout for dovecot-uidlist.lock
// A lock older than this process, untouched for this long, was left by a crash (ours: a restart after
// kill -9; a live Dovecot holds the lock for milliseconds). Waiting the full 120 s would stall every
// delivery and APPEND after each restart.
constexpr int kLockOrphanSeconds = 2;
const double g_process_start = [] {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}();
constexpr int kLockWaitMs = 10000;
constexpr size_t kMaxExpunged = 50000;
constexpr char kIndexMagic[8] = {'P', 'S', 'T', 'N', 'I', 'D', 'X', '\n'};
constexpr uint32_t kIndexVersion = 1;
constexpr size_t kIndexHeader = 16;
constexpr size_t kCacheFields = 5;

int64_t now_us() {
  timeval tv;
  ::gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
}

StoreError io_error(int err, std::string detail) {
  return {error_kind_from_errno(err), fmt::format("{}: {}", detail, std::strerror(err))};
}

// 0 or errno. `path` is relative to the directory `dir` (AT_FDCWD: as given). `expect`: the file's size when
// known (the S= of its name): then one read(2), no fstat and no read of the end of file.
int read_file_at(int dir, const char* path, std::string& out, uint64_t expect = kUnknownVsize) {
  // Reading leaves the file's access time alone: updating it writes the inode (a journal entry per message
  // read) for a time that neither Postern nor Dovecot looks at. Only the file's owner may ask for that.
  int fd = ::openat(dir, path, O_RDONLY | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::openat(dir, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  auto fail = [&] {
    int err = errno;
    ::close(fd);
    return err;
  };
  constexpr uint64_t kTrustUpTo = 16 << 20;  // a larger S= (damaged?) is checked before allocating for it
  if (expect == kUnknownVsize || expect > kTrustUpTo) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return fail();
    expect = static_cast<uint64_t>(st.st_size);
  }
  // A byte more than expected: a read that stops short of it by exactly that byte has reached the end.
  out.resize(static_cast<size_t>(expect) + 1);
  size_t got = 0;
  while (true) {
    if (got == out.size()) out.resize(out.size() + 4096);
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail();
    got += static_cast<size_t>(n);
    if (n == 0 || got == expect) break;
  }
  out.resize(got);
  ::close(fd);
  return 0;
}

int read_file(const std::string& path, std::string& out) {
  return read_file_at(AT_FDCWD, path.c_str(), out);
}

// A new message whose size neither its name nor the uidlist gave (Mailbox::Impl::make_meta): its file is
// looked at, for its size and, as it is there, its date. (Otherwise the date waits for someone to ask, as the
// vsize does: Mailbox::stat_dates, Mailbox::count_vsizes.)
struct Unread {
  bool stat = false;
  int dir = AT_FDCWD;          // the file is `name` in `dir`
  const char* name = nullptr;  // (in m.path)
};

// Touches nothing but `m`: called on several threads at once.
void stat_facts(MessageMeta& m, const Unread& unread) {
  struct stat st;
  if (::fstatat(unread.dir, unread.name, &st, 0) != 0) return;
  m.internal_date = st.st_mtime;
  m.size = static_cast<uint64_t>(st.st_size);
}

int write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

struct Stamp {
  bool exists = false;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  bool operator==(const Stamp& o) const {
    return exists == o.exists && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec;
  }
};

Stamp stamp_of(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return {true, st.st_ino, st.st_size, st.st_mtim};
}

// A stamp taken within the last second may hide a later change in the same clock tick.
bool recent(const Stamp& s) {
  return s.exists && s.mtime.tv_sec + 1 >= ::time(nullptr);
}

std::string random_guid() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 4; ++i) out += fmt::format("{:08x}", rd());
  return out;
}

// ",S=123" / ",W=123" in a Maildir base name.
bool name_field(std::string_view base, char key, uint64_t& value) {
  const char pat[] = {',', key, '=', '\0'};
  size_t pos = base.find(pat);
  if (pos == std::string_view::npos) return false;
  std::string_view digits = base.substr(pos + 3);
  digits = digits.substr(0, digits.find_first_not_of("0123456789"));
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  return ec == std::errc() && p != digits.data();
}

std::string_view file_part(std::string_view path) {
  return path.substr(path.rfind('/') + 1);
}

// Index records: u32 payload length, payload (type byte + fields, little-endian), u32 FNV-1a of payload.
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>(v >> (8 * i));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>(v >> (8 * i));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
uint32_t fnv1a(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}
void put_record(std::string& out, std::string_view payload) {
  put_u32(out, static_cast<uint32_t>(payload.size()));
  out += payload;
  put_u32(out, fnv1a(payload));
}

constexpr size_t kMetaPayload = 1 + 4 + 8 * 6 + 1 + 4;

void put_meta(std::string& out, const MessageMeta& m) {
  std::string p;
  p += 'M';
  put_u32(p, m.uid);
  put_u64(p, m.modseq);
  put_u64(p, static_cast<uint64_t>(m.save_date));
  put_u64(p, static_cast<uint64_t>(m.internal_date));
  put_u64(p, m.size);
  put_u64(p, m.vsize);
  put_u64(p, 0);  // reserved
  p += static_cast<char>(m.flags);
  put_u32(p, m.keywords);
  put_record(out, p);
}

struct CacheRef {
  uint64_t offset = 0;
  uint32_t length = 0;
  bool present = false;
};

struct NewFile {
  std::string tmp_path;
  std::string base;
  uint8_t flags = 0;
  std::vector<std::string> keywords;
  std::string other;  // info letters kept as they were (P, ...)
  int64_t internal_date = 0;
  uint64_t size = 0;
  uint64_t vsize = 0;
};

}  // namespace

struct Mailbox::Impl {
  Impl(std::string path, Owner owner) : path_(std::move(path)), owner_(owner) {}
  ~Impl() {
    if (index_fd_ >= 0) {
      if (!pending_.empty()) (void)write_all(index_fd_, pending_);
      ::close(index_fd_);
    }
    if (cur_dir_ >= 0) ::close(cur_dir_);
  }

  StoreError open(bool create);
  // `light`: only when the directories' stamps changed (a mutation's own check, many per second in a
  // burst); a session's sync also rescans a directory whose stamp is too recent to trust.
  StoreError sync_locked(bool force, bool& changed, bool light = false);
  // After this process changed cur/ itself: keep the recorded stamp in step when nobody else changed it
  // since (`before`: cur/'s stamp just before the change), so that the change costs no rescan.
  void own_change(const Stamp& before);
  std::string root_;  // the Maildir root (quota): path_, or its parent for a folder
  StoreError add_files(std::vector<NewFile>& files, std::vector<uint32_t>& uids, bool& changed);
  StoreError keyword_bits(const std::vector<std::string>& names, uint32_t& bits, bool& changed);
  void publish();
  void notify();
  void flush_index();
  // A cached FETCH item (under mu_).
  std::optional<std::string> cached_locked(uint32_t uid, CacheField field) const;
  void maybe_compact();
  StoreError lock_uidlist(int& fd);
  StoreError commit_uidlist(int fd);
  // Adds the last `count` entries of uidlist_ by appending their lines to dovecot-uidlist, as Dovecot
  // does (its header's N may then lag; readers take the highest UID + 1), instead of rewriting the whole
  // file for each APPEND. Rewrites when expunges are pending or after many appends.
  StoreError append_uidlist(int fd, size_t count);
  size_t appended_lines_ = 0;
  void unlock_uidlist(int fd);
  StoreError refresh_uidlist(bool& reset);
  void reset_state();
  void load_index();
  void reset_index();
  uint64_t next_modseq();
  MessageMeta* find(uint32_t uid);
  // `modseq`: the modseq of this sync's arrivals and changes, taken at the first need. A message the index
  // did not know is recorded (put_meta), unless its size is still to be looked up (`unread.stat`): then
  // stat_facts fills that in, and the caller records it.
  MessageMeta make_meta(uint32_t uid, const std::string& file, bool in_new, uint64_t& modseq, Unread& unread);
  void record_expunges(const std::vector<uint32_t>& uids);
  void read_keywords();
  // A file of this mailbox as (directory, name) for the *at() calls: relative to cur/ when it is there, else
  // (AT_FDCWD, path). The name points into `path`.
  std::pair<int, const char*> at(const std::string& path) const {
    if (cur_dir_ >= 0 && path.size() > path_.size() + 5 && path.starts_with(path_) &&
        path.compare(path_.size(), 5, "/cur/") == 0)
      return {cur_dir_, path.c_str() + path_.size() + 5};
    return {AT_FDCWD, path.c_str()};
  }
  void chown_fd(int fd) const {
    if (owner_.chown && ::fchown(fd, owner_.uid, owner_.gid) != 0) {
      // Best effort: the file stays usable by us; Dovecot as the mail user may then be refused.
    }
  }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

  const std::string path_;
  const Owner owner_;
  std::mutex mu_;
  // The mailbox as this process knows it, what publish() makes the next snapshot of.
  struct State {
    uint32_t uidvalidity = 0;
    uint32_t uidnext = 1;
    uint64_t highest_modseq = 1;
    std::vector<std::string> keywords;
    std::vector<MessageMeta> messages;
    std::vector<std::pair<uint32_t, uint64_t>> expunged;
  };
  State cur_;
  Uidlist uidlist_;
  // The UID dovecot-uidlist gives `base`, unless it has none or we expunged it. The map of names it looks in
  // is built at the first look after uidlist_ was read or changed in bulk, not at every read.
  std::optional<uint32_t> uidlist_uid(std::string_view base);
  void name_added(const std::string& base, uint32_t uid) {
    if (!names_stale_) uidlist_names_.insert_or_assign(base, uid);
  }
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, uint32_t, NameHash, std::equal_to<>> uidlist_names_;
  bool names_stale_ = true;
  Stamp uidlist_stamp_, keywords_stamp_, new_stamp_, cur_stamp_;
  bool dirty_ = true;
  std::chrono::steady_clock::time_point last_scan_{};
  bool first_sync_ = true;
  std::unordered_set<uint32_t> gone_;  // expunged UIDs still listed in uidlist_
  // postern-index
  int index_fd_ = -1;
  int cur_dir_ = -1;  // cur/, for reaching messages without walking path_ each time (at())
  uint64_t index_size_ = 0;
  uint64_t index_records_ = 0;
  std::string pending_;
  std::unordered_map<uint32_t, MessageMeta> loaded_;  // from the index, consumed by the first sync
  std::unordered_map<uint32_t, std::array<CacheRef, kCacheFields>> cache_;
  uint32_t recent_mark_ = 1;
  // publication
  std::mutex pub_mu_;
  std::shared_ptr<const Snapshot> pub_;
  std::mutex watch_mu_;
  std::map<int, std::function<void()>> watchers_;
  int next_watch_ = 1;
};

namespace {
std::mutex g_registry_mu;  // guards what follows
std::map<std::string, std::weak_ptr<Mailbox>> g_registry;
// The mailboxes opened last stay open after their last session ends, so that the next login (a POP3 client
// polling, a phone reconnecting) finds the index in memory and only stats the directories.
constexpr size_t kKeepOpen = 16;              // a 10,000-message mailbox holds about 2.5 MB
std::deque<std::shared_ptr<Mailbox>> g_kept;  // the most recently opened last

// Moves `mb` to the back of g_kept; the mailbox that falls out goes to `evicted`, to be released by the
// caller after g_registry_mu (which its destructor takes).
void keep(const std::shared_ptr<Mailbox>& mb, std::shared_ptr<Mailbox>& evicted) {
  auto it = std::find(g_kept.begin(), g_kept.end(), mb);
  if (it != g_kept.end()) g_kept.erase(it);
  g_kept.push_back(mb);
  if (g_kept.size() > kKeepOpen) {
    evicted = std::move(g_kept.front());
    g_kept.pop_front();
  }
}
}  // namespace

uint64_t Mailbox::Impl::next_modseq() {
  // Every modseq handed out is in an M or X record written with it (H records carry it over compaction).
  cur_.highest_modseq = std::max<uint64_t>(cur_.highest_modseq + 1, static_cast<uint64_t>(now_us()));
  return cur_.highest_modseq;
}

MessageMeta* Mailbox::Impl::find(uint32_t uid) {
  auto it = std::lower_bound(cur_.messages.begin(), cur_.messages.end(), uid,
                             [](const MessageMeta& m, uint32_t u) { return m.uid < u; });
  return it != cur_.messages.end() && it->uid == uid ? &*it : nullptr;
}

void Mailbox::Impl::publish() {
  std::shared_ptr<const Snapshot> before;
  {
    std::lock_guard lock(pub_mu_);
    before = pub_;
  }
  auto snap = std::make_shared<Snapshot>();
  snap->uidvalidity = cur_.uidvalidity;
  snap->uidnext = cur_.uidnext;
  snap->highest_modseq = cur_.highest_modseq;
  snap->keywords = cur_.keywords;
  snap->messages = MessageList(cur_.messages, before ? &before->messages : nullptr);
  snap->expunged = cur_.expunged;
  std::lock_guard lock(pub_mu_);
  pub_ = std::move(snap);
}

void Mailbox::Impl::notify() {
  std::vector<std::function<void()>> calls;
  {
    std::lock_guard lock(watch_mu_);
    for (auto& [id, fn] : watchers_) calls.push_back(fn);
  }
  for (auto& fn : calls) fn();
}

// ---- dovecot-uidlist and dovecot-keywords ----

StoreError Mailbox::Impl::lock_uidlist(int& fd) {
  std::string lock = file("dovecot-uidlist.lock");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kLockWaitMs);
  while (true) {
    fd = ::open(lock.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      chown_fd(fd);
      return {};
    }
    if (errno != EEXIST) return io_error(errno, "create " + lock);
    struct stat st;
    time_t now = ::time(nullptr);
    if (::stat(lock.c_str(), &st) == 0 &&
        (st.st_mtime + kLockStaleSeconds < now ||
         (static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1e9 < g_process_start &&
          st.st_mtime + kLockOrphanSeconds < now))) {
      ::unlink(lock.c_str());  // stale: its writer died (Dovecot overrides it the same way)
      continue;
    }
    if (std::chrono::steady_clock::now() > deadline)
      return {ErrorKind::kTemporary, "timeout waiting for " + lock};
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Mailbox::Impl::unlock_uidlist(int fd) {
  ::close(fd);
  ::unlink(file("dovecot-uidlist.lock").c_str());
}

// Writes uidlist_ (less the expunged) into the lock file, fsyncs it and renames it over dovecot-uidlist.
StoreError Mailbox::Impl::append_uidlist(int fd, size_t count) {
  constexpr size_t kRewriteAfter = 1000;
  Stamp before = stamp_of(file("dovecot-uidlist"));
  if (!gone_.empty() || appended_lines_ + count > kRewriteAfter || !before.exists ||
      !(before == uidlist_stamp_))
    return commit_uidlist(fd);
  std::string lines;
  for (size_t i = uidlist_.entries.size() - count; i < uidlist_.entries.size(); ++i) {
    const auto& e = uidlist_.entries[i];
    lines += std::to_string(e.uid) + (e.ext.empty() ? "" : " " + e.ext) + " :" + e.name + "\n";
  }
  int out = ::open(file("dovecot-uidlist").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  int err = out < 0 ? errno : write_all(out, lines);
  if (err == 0 && ::fsync(out) != 0) err = errno;
  if (out >= 0 && ::close(out) != 0 && err == 0) err = errno;
  unlock_uidlist(fd);
  if (err != 0) {
    uidlist_stamp_ = {};
    return io_error(err, "append to " + file("dovecot-uidlist"));
  }
  appended_lines_ += count;
  uidlist_stamp_ = stamp_of(file("dovecot-uidlist"));
  return {};
}

StoreError Mailbox::Impl::commit_uidlist(int fd) {
  appended_lines_ = 0;
  if (!gone_.empty()) {
    std::erase_if(uidlist_.entries, [&](const UidlistEntry& e) { return gone_.count(e.uid) != 0; });
    gone_.clear();
    names_stale_ = true;
  }
  std::string lock = file("dovecot-uidlist.lock");
  std::string text = format_uidlist(uidlist_);
  int err = write_all(fd, text);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err == 0 && ::rename(lock.c_str(), file("dovecot-uidlist").c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(lock.c_str());
    return io_error(err, "write " + file("dovecot-uidlist"));
  }
  if ((err = fsync_dir(path_)) != 0) return io_error(err, "fsync " + path_);
  uidlist_stamp_ = stamp_of(file("dovecot-uidlist"));
  return {};
}

void Mailbox::Impl::reset_state() {
  cur_.messages.clear();
  cur_.expunged.clear();
  gone_.clear();
  loaded_.clear();
  cache_.clear();
  reset_index();
}

// Re-reads dovecot-uidlist when it changed; a new UIDVALIDITY (someone recreated it) starts over.
StoreError Mailbox::Impl::refresh_uidlist(bool& reset) {
  Stamp st = stamp_of(file("dovecot-uidlist"));
  if (st == uidlist_stamp_ && st.exists) return {};
  std::string text;
  int err = st.exists ? read_file(file("dovecot-uidlist"), text) : ENOENT;
  Result<Uidlist> parsed = err == 0 ? parse_uidlist(text) : Result<Uidlist>(Error{"missing"});
  if (err != 0 && err != ENOENT) return io_error(err, "read " + file("dovecot-uidlist"));
  if (!parsed) {
    // Missing or damaged: write one from what we know (a new UIDVALIDITY when we know nothing).
    int fd = -1;
    if (auto e = lock_uidlist(fd); !e.ok()) return e;
    if (uidlist_.uidvalidity == 0) {
      uidlist_.uidvalidity = static_cast<uint32_t>(::time(nullptr));
      uidlist_.guid = random_guid();
      uidlist_.next_uid = 1;
      uidlist_.entries.clear();
      for (const auto& m : cur_.messages) uidlist_.entries.push_back({m.uid, "", *m.name});
      uidlist_.next_uid = std::max(uidlist_.next_uid, cur_.uidnext);
      names_stale_ = true;
    }
    if (auto e = commit_uidlist(fd); !e.ok()) return e;
    return {};
  }
  reset = uidlist_.uidvalidity != 0 && parsed->uidvalidity != uidlist_.uidvalidity;
  uidlist_ = std::move(*parsed);
  if (reset) reset_state();
  names_stale_ = true;
  uidlist_stamp_ = st;
  return {};
}

void Mailbox::Impl::read_keywords() {
  Stamp st = stamp_of(file("dovecot-keywords"));
  if (st == keywords_stamp_) return;
  std::string text;
  if (st.exists && read_file(file("dovecot-keywords"), text) == 0) {
    auto parsed = parse_keywords(text);
    // Never forget a keyword we know (a stale file from another writer): keep ours where theirs is empty.
    if (parsed.size() < cur_.keywords.size()) parsed.resize(cur_.keywords.size());
    for (size_t i = 0; i < parsed.size(); ++i)
      if (parsed[i].empty() && i < cur_.keywords.size()) parsed[i] = cur_.keywords[i];
    cur_.keywords = std::move(parsed);
  }
  keywords_stamp_ = st;
}

// Keyword names -> bits, adding unknown names to dovecot-keywords. Error when a 27th would be needed.
StoreError Mailbox::Impl::keyword_bits(const std::vector<std::string>& names, uint32_t& bits, bool& changed) {
  read_keywords();
  bits = 0;
  std::vector<std::string> add;
  for (const auto& n : names) {
    auto it = std::find(cur_.keywords.begin(), cur_.keywords.end(), n);
    if (it != cur_.keywords.end()) {
      bits |= 1u << (it - cur_.keywords.begin());
    } else if (std::find(add.begin(), add.end(), n) == add.end()) {
      add.push_back(n);
    }
  }
  if (add.empty()) return {};
  std::string lock = file("dovecot-keywords.lock");
  int fd = -1;
  for (int tries = 0; tries < 2000; ++tries) {
    fd = ::open(lock.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0 || errno != EEXIST) break;
    struct stat st;
    if (::stat(lock.c_str(), &st) == 0 && st.st_mtime + kLockStaleSeconds < ::time(nullptr))
      ::unlink(lock.c_str());
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (fd < 0) return io_error(errno, "create " + lock);
  chown_fd(fd);
  keywords_stamp_ = {};
  read_keywords();
  std::vector<std::string> kw = cur_.keywords;
  for (const auto& n : add) {
    auto it = std::find(kw.begin(), kw.end(), n);
    if (it != kw.end()) {
      bits |= 1u << (it - kw.begin());
      continue;
    }
    auto hole = std::find(kw.begin(), kw.end(), std::string());
    if (hole == kw.end()) {
      if (kw.size() >= 26) {
        ::close(fd);
        ::unlink(lock.c_str());
        return {ErrorKind::kPermanent, "too many keywords (Maildir allows 26)"};
      }
      kw.push_back(n);
      hole = kw.end() - 1;
    } else {
      *hole = n;
    }
    bits |= 1u << (hole - kw.begin());
  }
  int err = write_all(fd, format_keywords(kw));
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err == 0 && ::rename(lock.c_str(), file("dovecot-keywords").c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(lock.c_str());
    return io_error(err, "write " + file("dovecot-keywords"));
  }
  cur_.keywords = std::move(kw);
  keywords_stamp_ = stamp_of(file("dovecot-keywords"));
  changed = true;
  return {};
}

// ---- postern-index ----

void Mailbox::Impl::reset_index() {
  if (index_fd_ < 0) return;
  std::string h(kIndexMagic, sizeof kIndexMagic);
  put_u32(h, kIndexVersion);
  put_u32(h, uidlist_.uidvalidity);
  if (::ftruncate(index_fd_, 0) != 0 || write_all(index_fd_, h) != 0) {
    ::close(index_fd_);
    index_fd_ = -1;
    return;
  }
  index_size_ = h.size();
  index_records_ = 0;
  pending_.clear();
  cache_.clear();
}

void Mailbox::Impl::load_index() {
  std::string name = file("postern-index");
  index_fd_ = ::open(name.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (index_fd_ < 0) return;  // no cache: everything still works, only slower
  chown_fd(index_fd_);
  std::string data;
  if (read_file(name, data) != 0 || data.size() < kIndexHeader ||
      data.compare(0, sizeof kIndexMagic, kIndexMagic, sizeof kIndexMagic) != 0 ||
      get_u32(data.data() + 8) != kIndexVersion || get_u32(data.data() + 12) != uidlist_.uidvalidity) {
    reset_index();
    return;
  }
  size_t pos = kIndexHeader;
  while (pos + 8 <= data.size()) {
    uint32_t len = get_u32(data.data() + pos);
    if (len == 0 || len > data.size() - pos - 8) break;
    std::string_view p(data.data() + pos + 4, len);
    if (get_u32(data.data() + pos + 4 + len) != fnv1a(p)) break;
    const char* d = p.data() + 1;
    switch (p[0]) {
      case 'M':
        if (len == kMetaPayload) {
          MessageMeta m;
          m.uid = get_u32(d);
          m.modseq = get_u64(d + 4);
          m.save_date = static_cast<int64_t>(get_u64(d + 12));
          m.internal_date = static_cast<int64_t>(get_u64(d + 20));
          m.size = get_u64(d + 28);
          m.vsize = get_u64(d + 36);
          m.flags = static_cast<uint8_t>(d[52]);
          m.keywords = get_u32(d + 53);
          cur_.highest_modseq = std::max(cur_.highest_modseq, m.modseq);
          loaded_[m.uid] = std::move(m);
        }
        break;
      case 'C':
        if (len >= 6 && static_cast<uint8_t>(d[4]) < kCacheFields)
          cache_[get_u32(d)][static_cast<uint8_t>(d[4])] = {pos + 4 + 6, len - 6, true};
        break;
      case 'X':
        if (len == 13) {
          uint32_t uid = get_u32(d);
          uint64_t ms = get_u64(d + 4);
          loaded_.erase(uid);
          cache_.erase(uid);
          cur_.expunged.emplace_back(uid, ms);
          cur_.highest_modseq = std::max(cur_.highest_modseq, ms);
        }
        break;
      case 'H':
        if (len == 9) cur_.highest_modseq = std::max(cur_.highest_modseq, get_u64(d));
        break;
      case 'R':
        if (len == 5) recent_mark_ = std::max(recent_mark_, get_u32(d));
        break;
      default:
        break;  // a record type of a later version of this format
    }
    pos += 8 + len;
    ++index_records_;
  }
  if (pos != data.size() && ::ftruncate(index_fd_, static_cast<off_t>(pos)) != 0) {
    reset_index();
    return;
  }
  index_size_ = pos;
  if (cur_.expunged.size() > kMaxExpunged)
    cur_.expunged.erase(cur_.expunged.begin(), cur_.expunged.end() - kMaxExpunged);
}

void Mailbox::Impl::flush_index() {
  if (pending_.empty()) return;
  if (index_fd_ >= 0) {
    size_t records = 0;
    for (size_t pos = 0; pos + 4 <= pending_.size(); ++records) pos += 8 + get_u32(pending_.data() + pos);
    if (write_all(index_fd_, pending_) == 0) {
      index_size_ += pending_.size();
      index_records_ += records;
    } else {
      reset_index();  // a short write would hide every later record: start the cache over
    }
  }
  pending_.clear();
  maybe_compact();
}

// Rewrites the index with only live records when most of it is dead.
void Mailbox::Impl::maybe_compact() {
  size_t live = cur_.messages.size() + cache_.size() * 2 + cur_.expunged.size() + 2;
  if (index_fd_ < 0 || index_records_ < 2 * live + 1000) return;
  std::string out(kIndexMagic, sizeof kIndexMagic);
  put_u32(out, kIndexVersion);
  put_u32(out, uidlist_.uidvalidity);
  std::string p;
  p += 'H';
  put_u64(p, cur_.highest_modseq);
  put_record(out, p);
  p = "R";
  put_u32(p, recent_mark_);
  put_record(out, p);
  for (const auto& [uid, ms] : cur_.expunged) {
    p = "X";
    put_u32(p, uid);
    put_u64(p, ms);
    put_record(out, p);
  }
  size_t records = 2 + cur_.expunged.size();
  decltype(cache_) moved;
  for (const auto& m : cur_.messages) {
    put_meta(out, m);
    ++records;
    auto it = cache_.find(m.uid);
    if (it == cache_.end()) continue;
    for (size_t f = 0; f < kCacheFields; ++f) {
      const CacheRef& ref = it->second[f];
      if (!ref.present) continue;
      std::string value(ref.length, '\0');
      if (::pread(index_fd_, value.data(), ref.length, static_cast<off_t>(ref.offset)) !=
          static_cast<ssize_t>(ref.length))
        continue;
      p = "C";
      put_u32(p, m.uid);
      p += static_cast<char>(f);
      p += value;
      moved[m.uid][f] = {out.size() + 4 + 6, ref.length, true};
      put_record(out, p);
      ++records;
    }
  }
  std::string tmp = file("postern-index.new");
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  chown_fd(fd);
  if (write_all(fd, out) != 0 || ::rename(tmp.c_str(), file("postern-index").c_str()) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return;
  }
  ::close(index_fd_);
  index_fd_ = fd;
  index_size_ = out.size();
  index_records_ = records;
  cache_ = std::move(moved);
}

// ---- messages ----

MessageMeta Mailbox::Impl::make_meta(uint32_t uid, const std::string& fname, bool in_new, uint64_t& modseq,
                                     Unread& unread) {
  unread = {};
  MessageMeta m;
  m.uid = uid;
  m.name = shared_text(std::string(maildir_base(fname)));
  m.path = shared_text(path_ + (in_new ? "/new/" : "/cur/") + fname);
  MaildirInfo info = parse_info(fname, cur_.keywords.size());
  m.flags = info.flags;
  m.keywords = info.keywords;
  auto it = loaded_.find(uid);
  if (it != loaded_.end()) {
    const MessageMeta& old = it->second;
    m.size = old.size;
    m.vsize = old.vsize;
    m.internal_date = old.internal_date;
    m.save_date = old.save_date;
    m.modseq = old.modseq;
    if (old.flags == m.flags && old.keywords == m.keywords) {
      loaded_.erase(it);
      return m;  // unchanged since the index was written: no stat, no record
    }
    loaded_.erase(it);
    if (!modseq) modseq = next_modseq();
    m.modseq = modseq;
    put_meta(pending_, m);
    return m;
  }
  bool have_size = name_field(*m.name, 'S', m.size);
  bool have_vsize = name_field(*m.name, 'W', m.vsize);
  // The uidlist's line of this UID (entries are in UID order), when it names this file.
  auto e = std::lower_bound(uidlist_.entries.begin(), uidlist_.entries.end(), uid,
                            [](const UidlistEntry& x, uint32_t u) { return x.uid < u; });
  if (e != uidlist_.entries.end() && e->uid == uid && e->name == *m.name) {
    if (!have_size) have_size = uidlist_ext_field(e->ext, 'S', m.size);
    if (!have_vsize) have_vsize = uidlist_ext_field(e->ext, 'W', m.vsize);
  }
  if (!have_vsize) m.vsize = kUnknownVsize;
  m.internal_date = kUnknownDate;
  unread.stat = !have_size;
  m.save_date = ::time(nullptr);
  if (!modseq) modseq = next_modseq();
  m.modseq = modseq;
  if (!unread.stat) put_meta(pending_, m);  // else once stat_facts has filled it in
  return m;
}

void Mailbox::Impl::record_expunges(const std::vector<uint32_t>& uids) {
  if (uids.empty()) return;
  uint64_t ms = next_modseq();
  std::unordered_set<uint32_t> set(uids.begin(), uids.end());
  int64_t freed = 0;
  for (const auto& m : cur_.messages)
    if (set.count(m.uid)) freed += static_cast<int64_t>(m.size);
  usage_changed(root_, -freed);
  std::erase_if(cur_.messages, [&](const MessageMeta& m) { return set.count(m.uid) != 0; });
  for (uint32_t uid : uids) {
    cur_.expunged.emplace_back(uid, ms);
    cache_.erase(uid);
    gone_.insert(uid);
    std::string p = "X";
    put_u32(p, uid);
    put_u64(p, ms);
    put_record(pending_, p);
  }
  if (cur_.expunged.size() > kMaxExpunged)
    cur_.expunged.erase(cur_.expunged.begin(), cur_.expunged.end() - kMaxExpunged);
}

namespace {

// A file of new/ or cur/.
struct Found {
  std::string file;
  size_t base_size = 0;  // of maildir_base(file)
  bool in_new = false;
  bool matched = false;
  std::string_view base() const { return std::string_view(file).substr(0, base_size); }
};

// 0 or errno; the files of `dir` added to `out`.
int scan_dir(const std::string& dir, bool in_new, std::vector<Found>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return errno;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string_view name = e->d_name;
    out.push_back(Found{std::string(name), maildir_base(name).size(), in_new, false});
  }
  ::closedir(d);
  return 0;
}

// The files of new/ and cur/ (0 or errno), sorted by base name, one per base name: a name in cur/ wins over
// the same one in new/. (Sorted rather than hashed: no allocation per file but its name, and files come out
// in the order new ones get their UIDs.)
int scan_maildir(const std::string& path, std::vector<Found>& out, std::string& failed) {
  for (bool in_new : {true, false}) {
    failed = path + (in_new ? "/new" : "/cur");
    if (int err = scan_dir(failed, in_new, out); err != 0) return err;
  }
  std::sort(out.begin(), out.end(), [](const Found& a, const Found& b) {
    int c = a.base().compare(b.base());
    return c != 0 ? c < 0 : a.in_new < b.in_new;
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const Found& a, const Found& b) { return a.base() == b.base(); }),
            out.end());
  return 0;
}

// The file of `base` in `files` (scan_maildir's), or null. `next`: where to look first, one past the last
// file found (messages in UID order are mostly in name order too).
Found* find_file(std::vector<Found>& files, std::string_view base, size_t& next) {
  if (next < files.size() && files[next].base() == base) return &files[next++];
  auto it = std::lower_bound(files.begin(), files.end(), base,
                             [](const Found& f, std::string_view b) { return f.base() < b; });
  if (it == files.end() || it->base() != base) return nullptr;
  next = static_cast<size_t>(it - files.begin()) + 1;
  return &*it;
}

}  // namespace

std::optional<uint32_t> Mailbox::Impl::uidlist_uid(std::string_view base) {
  if (names_stale_) {
    uidlist_names_.clear();
    uidlist_names_.reserve(uidlist_.entries.size());
    for (const auto& e : uidlist_.entries) uidlist_names_.emplace(e.name, e.uid);  // the first line counts
    names_stale_ = false;
  }
  if (uidlist_names_.empty()) return std::nullopt;  // a new uidlist: no name to hash
  auto it = uidlist_names_.find(base);
  if (it == uidlist_names_.end() || gone_.count(it->second)) return std::nullopt;
  return it->second;
}

void Mailbox::Impl::own_change(const Stamp& before) {
  if (before == cur_stamp_) cur_stamp_ = stamp_of(path_ + "/cur");
}

StoreError Mailbox::Impl::sync_locked(bool force, bool& changed, bool light) {
  Stamp ns = stamp_of(path_ + "/new"), cs = stamp_of(path_ + "/cur");
  if (!ns.exists || !cs.exists) return {ErrorKind::kPermanent, path_ + " is not a Maildir (no cur/ or new/)"};
  Stamp us = stamp_of(file("dovecot-uidlist"));
  Stamp ks = stamp_of(file("dovecot-keywords"));
  // A stamp too recent to trust is rescanned, but at most every 200 ms: in a burst of changes (APPENDs,
  // deliveries) a session's sync must not rescan the whole directory each time.
  auto now = std::chrono::steady_clock::now();
  bool rescan_dirty = dirty_ && now - last_scan_ >= std::chrono::milliseconds(200);
  if (!force && (light || !rescan_dirty) && ns == new_stamp_ && cs == cur_stamp_ && us == uidlist_stamp_ &&
      ks == keywords_stamp_)
    return {};
  if (!(ks == keywords_stamp_)) {
    read_keywords();
    changed = true;
  }
  bool reset = false;
  if (auto e = refresh_uidlist(reset); !e.ok()) return e;
  if (reset) changed = true;
  cur_.uidvalidity = uidlist_.uidvalidity;
  new_stamp_ = ns;
  cur_stamp_ = cs;
  dirty_ = recent(ns) || recent(cs);
  last_scan_ = now;

  std::vector<Found> found;
  found.reserve(cur_.messages.size() + 64);
  std::string dir;
  if (int err = scan_maildir(path_, found, dir); err != 0) return io_error(err, "read " + dir);

  uint64_t flag_modseq = 0;
  std::vector<uint32_t> missing;
  auto match = [&](MessageMeta& m, Found& f) {
    f.matched = true;
    std::string now_path = path_ + (f.in_new ? "/new/" : "/cur/") + f.file;
    if (now_path == *m.path) return;
    MaildirInfo info = parse_info(f.file, cur_.keywords.size());
    m.path = shared_text(std::move(now_path));
    changed = true;
    if (info.flags != m.flags || info.keywords != m.keywords) {
      m.flags = info.flags;
      m.keywords = info.keywords;
      if (!flag_modseq) flag_modseq = next_modseq();
      m.modseq = flag_modseq;
      put_meta(pending_, m);
    }
  };
  size_t next = 0;
  for (auto& m : cur_.messages) {
    if (Found* f = find_file(found, *m.name, next))
      match(m, *f);
    else
      missing.push_back(m.uid);
  }
  if (!missing.empty()) {
    // readdir may miss a file renamed while it ran: look again before calling anything expunged. (A file
    // found only now is matched and put last: the unmatched ones stay in name order.)
    std::vector<Found> again;
    scan_maildir(path_, again, dir);
    std::vector<uint32_t> really;
    size_t next_again = 0;
    for (uint32_t uid : missing) {
      MessageMeta* m = find(uid);
      Found* f = find_file(again, *m->name, next_again);
      if (!f) {
        really.push_back(uid);
        continue;
      }
      found.push_back(std::move(*f));
      match(*m, found.back());
    }
    missing = std::move(really);
  }

  // Files without a UID of ours: the uidlist's UID when Dovecot gave one, else new ones in name order.
  std::vector<const Found*> fresh;
  std::vector<std::pair<uint32_t, const Found*>> adopt;
  for (const Found& f : found) {
    if (f.matched) continue;
    if (auto uid = uidlist_uid(f.base()))
      adopt.emplace_back(*uid, &f);
    else
      fresh.push_back(&f);
  }
  if (!fresh.empty()) {
    int fd = -1;
    if (auto e = lock_uidlist(fd); !e.ok()) return e;
    uidlist_stamp_ = {};
    bool reset2 = false;
    if (auto e = refresh_uidlist(reset2); !e.ok()) {
      unlock_uidlist(fd);
      return e;
    }
    // Many new names (a Maildir filled by another program, or an index deleted) are not added to the map
    // one by one: it is built again if a later sync needs it.
    bool many = fresh.size() >= 1024;
    for (const Found* f : fresh) {
      if (auto uid = uidlist_uid(f->base())) {  // given by the uidlist read again under the lock
        adopt.emplace_back(*uid, f);
        continue;
      }
      uint32_t uid = uidlist_.next_uid++;  // also for a name back after its expunge: a UID is never reused
      uidlist_.entries.push_back({uid, "", std::string(f->base())});
      if (!many) name_added(uidlist_.entries.back().name, uid);
      adopt.emplace_back(uid, f);
    }
    if (many) names_stale_ = true;
    if (auto e = commit_uidlist(fd); !e.ok()) return e;
  }
  uint64_t arrival = 0;
  size_t kept = cur_.messages.size();
  std::vector<std::pair<size_t, Unread>> unread;
  for (auto& [uid, f] : adopt) {
    if (find(uid)) continue;  // two names for one UID in a damaged uidlist: keep the first
    Unread u;
    cur_.messages.push_back(make_meta(uid, f->file, f->in_new, arrival, u));
    if (u.stat) {
      std::tie(u.dir, u.name) = at(*cur_.messages.back().path);
      unread.emplace_back(cur_.messages.size() - 1, u);
    }
    changed = true;
  }
  // The files of many new messages (a Maildir filled by another program, or an index deleted) are looked at
  // on several threads: the waits for the disk overlap.
  parallel_for(unread.size(), 64, 8,
               [&](size_t i) { stat_facts(cur_.messages[unread[i].first], unread[i].second); });
  for (auto& [at, u] : unread) put_meta(pending_, cur_.messages[at]);
  sort_added(cur_.messages, kept);

  // new/ -> cur/, as Dovecot does for a mailbox opened read-write.
  for (auto& m : cur_.messages) {
    std::string_view fname = file_part(*m.path);
    if (m.path->size() < path_.size() + 5 || m.path->compare(path_.size(), 5, "/new/") != 0) continue;
    std::string to =
        path_ + "/cur/" +
        (fname.find(":2,") == std::string_view::npos ? file_name_with_info(*m.name, MaildirInfo{})
                                                     : std::string(fname));
    if (::rename(m.path->c_str(), to.c_str()) == 0) {
      m.path = shared_text(std::move(to));
      changed = true;
    } else {
      dirty_ = true;  // moved by someone else: the next sync finds it
    }
  }

  if (first_sync_) {
    // Messages the index knew that are gone: expunged while nobody of ours had the mailbox open.
    for (const auto& [uid, m] : loaded_) missing.push_back(uid);
    loaded_.clear();
    first_sync_ = false;
  }
  if (!missing.empty()) {
    record_expunges(missing);
    changed = true;
  }
  uint32_t max_uid = cur_.messages.empty() ? 0 : cur_.messages.back().uid;
  cur_.uidnext = std::max(uidlist_.next_uid, max_uid + 1);
  flush_index();
  return {};
}

StoreError Mailbox::Impl::open(bool create) {
  if (create) {
    if (auto st = make_maildir(path_, owner_); !st) return {ErrorKind::kTemporary, st.error().message};
  }
  struct stat st;
  if (::stat((path_ + "/cur").c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return {ErrorKind::kPermanent, path_ + " is not a Maildir"};
  root_ = ::stat((path_ + "/maildirfolder").c_str(), &st) == 0 ? path_.substr(0, path_.rfind('/')) : path_;
  cur_dir_ = ::open((path_ + "/cur").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  read_keywords();
  bool reset = false;
  if (auto e = refresh_uidlist(reset); !e.ok()) return e;
  cur_.uidvalidity = uidlist_.uidvalidity;
  load_index();
  bool changed = false;
  if (auto e = sync_locked(true, changed); !e.ok()) return e;
  publish();
  return {};
}

// Moves prepared files (in tmp/, fsync'd) into cur/ and gives them UIDs, all under one uidlist lock.
StoreError Mailbox::Impl::add_files(std::vector<NewFile>& files, std::vector<uint32_t>& uids, bool& changed) {
  auto drop_all = [&](size_t from) {
    for (size_t i = from; i < files.size(); ++i) ::unlink(files[i].tmp_path.c_str());
  };
  if (auto e = sync_locked(false, changed, true); !e.ok()) {
    drop_all(0);
    return e;
  }
  std::vector<uint32_t> bits(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    std::vector<std::string> kws = files[i].keywords;
    if (auto e = keyword_bits(kws, bits[i], changed); !e.ok()) {
      // No room for more keywords: keep those that fit.
      kws.erase(std::remove_if(kws.begin(), kws.end(),
                               [&](const std::string& k) {
                                 return std::find(cur_.keywords.begin(), cur_.keywords.end(), k) ==
                                        cur_.keywords.end();
                               }),
                kws.end());
      if (auto e2 = keyword_bits(kws, bits[i], changed); !e2.ok()) bits[i] = 0;
    }
  }
  int fd = -1;
  if (auto e = lock_uidlist(fd); !e.ok()) {
    drop_all(0);
    return e;
  }
  // Under the lock: re-read dovecot-uidlist if another writer changed it (its stamp: inode, size, time).
  bool reset = false;
  if (auto e = refresh_uidlist(reset); !e.ok()) {
    unlock_uidlist(fd);
    drop_all(0);
    return e;
  }
  Stamp cur_before = stamp_of(path_ + "/cur");
  std::vector<std::string> finals;
  for (size_t i = 0; i < files.size(); ++i) {
    MaildirInfo info{files[i].flags, bits[i], files[i].other};
    std::string to = path_ + "/cur/" + file_name_with_info(files[i].base, info);
    if (::rename(files[i].tmp_path.c_str(), to.c_str()) != 0) {
      StoreError e = io_error(errno, "rename into " + path_ + "/cur");
      for (const auto& f : finals) ::unlink(f.c_str());
      drop_all(i);
      unlock_uidlist(fd);
      return e;
    }
    finals.push_back(std::move(to));
  }
  int err = fsync_dir(path_ + "/cur");
  own_change(cur_before);
  std::vector<uint32_t> assigned;
  for (size_t i = 0; i < files.size() && err == 0; ++i) {
    uint32_t uid = uidlist_.next_uid++;
    uidlist_.entries.push_back({uid, "", files[i].base});
    name_added(files[i].base, uid);
    assigned.push_back(uid);
  }
  StoreError e = err != 0 ? io_error(err, "fsync " + path_ + "/cur") : append_uidlist(fd, assigned.size());
  if (err != 0) unlock_uidlist(fd);
  if (!e.ok()) {
    // Never a message without its UID on disk: take the files back out.
    for (const auto& f : finals) ::unlink(f.c_str());
    uidlist_stamp_ = {};
    return e;
  }
  uint64_t ms = next_modseq();
  int64_t now = ::time(nullptr);
  size_t kept = cur_.messages.size();
  for (size_t i = 0; i < files.size(); ++i) {
    MessageMeta m;
    m.uid = assigned[i];
    m.flags = files[i].flags;
    m.keywords = bits[i];
    m.size = files[i].size;
    m.vsize = files[i].vsize;
    m.internal_date = files[i].internal_date;
    m.save_date = now;
    m.modseq = ms;
    m.name = shared_text(files[i].base);
    m.path = shared_text(finals[i]);
    put_meta(pending_, m);
    cur_.messages.push_back(std::move(m));
  }
  sort_added(cur_.messages, kept);
  cur_.uidnext = std::max(cur_.uidnext, uidlist_.next_uid);
  uids = std::move(assigned);
  changed = true;
  flush_index();
  return {};
}

// ---- Mailbox ----

Mailbox::Mailbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Mailbox::~Mailbox() {
  std::lock_guard lock(g_registry_mu);
  auto it = g_registry.find(impl_->path_);
  if (it != g_registry.end() && it->second.expired()) g_registry.erase(it);
}

Result<std::shared_ptr<Mailbox>> Mailbox::open(const std::string& maildir, const Owner& owner, bool create) {
  std::string path = maildir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::shared_ptr<Mailbox> evicted;  // released after the lock
  std::lock_guard lock(g_registry_mu);
  auto it = g_registry.find(path);
  if (it != g_registry.end()) {
    if (auto mb = it->second.lock()) {
      keep(mb, evicted);
      return mb;
    }
  }
  auto impl = std::make_unique<Impl>(path, owner);
  {
    std::lock_guard ilock(impl->mu_);
    if (auto e = impl->open(create); !e.ok()) return Error{e.detail};
  }
  std::shared_ptr<Mailbox> mb(new Mailbox(std::move(impl)));
  g_registry[path] = mb;
  keep(mb, evicted);
  return mb;
}

void Mailbox::notify_changed(const std::string& maildir) {
  std::string path = maildir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::shared_ptr<Mailbox> mb;
  {
    std::lock_guard lock(g_registry_mu);
    auto it = g_registry.find(path);
    if (it != g_registry.end()) mb = it->second.lock();
  }
  if (!mb) return;
  {
    // Nobody waits to hear of it (the instance is only kept open, or no session watches): the next sync,
    // at the next command or login, finds the message.
    std::lock_guard wlock(mb->impl_->watch_mu_);
    if (mb->impl_->watchers_.empty()) return;
  }
  (void)mb->sync();
}

void Mailbox::forget(const std::string& maildir) {
  std::string path = maildir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::vector<std::shared_ptr<Mailbox>> dropped;  // released after the lock
  std::lock_guard lock(g_registry_mu);
  for (auto it = g_kept.begin(); it != g_kept.end();) {
    const std::string& p = (*it)->path();
    if (p == path || (p.size() > path.size() && p.compare(0, path.size() + 1, path + ".") == 0)) {
      dropped.push_back(std::move(*it));
      it = g_kept.erase(it);
    } else {
      ++it;
    }
  }
}

const std::string& Mailbox::path() const {
  return impl_->path_;
}

StoreError Mailbox::sync() {
  bool changed = false;
  StoreError e;
  {
    std::lock_guard lock(impl_->mu_);
    e = impl_->sync_locked(false, changed);
    if (changed) impl_->publish();
  }
  if (changed) impl_->notify();
  return e;
}

std::shared_ptr<const Snapshot> Mailbox::snapshot() const {
  std::lock_guard lock(impl_->pub_mu_);
  return impl_->pub_;
}

StoreError Mailbox::append(std::string_view content, uint8_t flags, const std::vector<std::string>& keywords,
                           int64_t internal_date, uint64_t size_limit, uint32_t& uid) {
  const std::string& path = impl_->path_;
  // mailbox_size_limit counts the whole Maildir: a folder's root is its parent.
  if (size_limit != 0 && usage(impl_->root_) + content.size() > size_limit)
    return {ErrorKind::kQuotaExceeded, fmt::format("{}: mailbox_size_limit {} reached", path, size_limit)};
  NewFile nf;
  nf.size = content.size();
  nf.vsize = crlf_size(content);
  nf.base = unique_name(nf.size, nf.vsize);
  nf.tmp_path = path + "/tmp/" + nf.base;
  nf.flags = flags;
  nf.keywords = keywords;
  nf.internal_date = internal_date ? internal_date : ::time(nullptr);
  int fd = ::open(nf.tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return io_error(errno, "create " + nf.tmp_path);
  impl_->chown_fd(fd);
  timespec times[2] = {{nf.internal_date, 0}, {nf.internal_date, 0}};
  int err = write_all(fd, content);
  if (err == 0 && ::futimens(fd, times) != 0) err = errno;
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(nf.tmp_path.c_str());
    return io_error(err, "write " + nf.tmp_path);
  }
  std::vector<NewFile> files{std::move(nf)};
  std::vector<uint32_t> uids;
  bool changed = false;
  StoreError e;
  {
    std::lock_guard lock(impl_->mu_);
    e = impl_->add_files(files, uids, changed);
    if (changed) impl_->publish();
  }
  if (changed) impl_->notify();
  if (e.ok()) {
    uid = uids.front();
    usage_changed(impl_->root_, static_cast<int64_t>(content.size()));
  }
  return e;
}

StoreError Mailbox::store(const std::vector<uint32_t>& uids, FlagOp op, uint8_t flags,
                          const std::vector<std::string>& keywords, uint64_t unchanged_since,
                          std::vector<uint32_t>* failed) {
  bool changed = false;
  StoreError e;
  {
    std::lock_guard lock(impl_->mu_);
    Impl& im = *impl_;
    e = im.sync_locked(false, changed, true);
    Stamp cur_before = stamp_of(im.path_ + "/cur");
    uint32_t kbits = 0;
    if (e.ok()) e = im.keyword_bits(keywords, kbits, changed);
    uint64_t ms = 0;
    for (size_t i = 0; e.ok() && i < uids.size(); ++i) {
      for (int attempt = 0; attempt < 3; ++attempt) {
        MessageMeta* m = im.find(uids[i]);
        if (!m) break;
        if (unchanged_since != 0 && m->modseq > unchanged_since) {
          if (failed) failed->push_back(m->uid);
          break;
        }
        uint8_t nf = op == FlagOp::kSet   ? flags
                     : op == FlagOp::kAdd ? (m->flags | flags)
                                          : (m->flags & ~flags);
        uint32_t nk = op == FlagOp::kSet   ? kbits
                      : op == FlagOp::kAdd ? (m->keywords | kbits)
                                           : (m->keywords & ~kbits);
        if (nf == m->flags && nk == m->keywords) break;
        std::string_view cur_file = file_part(*m->path);
        MaildirInfo info = parse_info(cur_file, im.cur_.keywords.size());
        info.flags = nf;
        info.keywords = nk;
        std::string to = im.path_ + "/cur/" + file_name_with_info(*m->name, info);
        auto [from_dir, from_name] = im.at(*m->path);
        auto [to_dir, to_name] = im.at(to);
        if (::renameat(from_dir, from_name, to_dir, to_name) != 0) {
          if (errno != ENOENT) {
            e = io_error(errno, "rename " + *m->path);
            break;
          }
          // Renamed or expunged by another program meanwhile: look again.
          if (auto se = im.sync_locked(true, changed); !se.ok()) {
            e = se;
            break;
          }
          continue;
        }
        if (!ms) ms = im.next_modseq();
        m->flags = nf;
        m->keywords = nk;
        m->path = shared_text(std::move(to));
        m->modseq = ms;
        put_meta(im.pending_, *m);
        changed = true;
        break;
      }
    }
    im.own_change(cur_before);
    im.flush_index();
    if (changed) im.publish();
  }
  if (changed) impl_->notify();
  return e;
}

StoreError Mailbox::expunge(const std::vector<uint32_t>& uids) {
  bool changed = false;
  StoreError e;
  {
    std::lock_guard lock(impl_->mu_);
    Impl& im = *impl_;
    e = im.sync_locked(false, changed, true);
    Stamp cur_before = stamp_of(im.path_ + "/cur");
    std::vector<uint32_t> done, again;
    if (e.ok()) {
      std::vector<std::string> paths;
      std::vector<uint32_t> which;
      for (uint32_t uid : uids) {
        if (const MessageMeta* m = im.find(uid)) {
          paths.push_back(*m->path);
          which.push_back(uid);
        }
      }
      std::vector<int> errs = unlink_many(paths);
      for (size_t i = 0; i < paths.size(); ++i) {
        if (errs[i] == 0)
          done.push_back(which[i]);
        else if (errs[i] == ENOENT)
          again.push_back(which[i]);  // renamed meanwhile (a flag change elsewhere), or gone
        else if (e.ok())
          e = io_error(errs[i], "unlink " + paths[i]);
      }
    }
    for (size_t i = 0; e.ok() && i < again.size(); ++i) {
      for (int attempt = 0; attempt < 3; ++attempt) {
        MessageMeta* m = im.find(again[i]);
        if (!m) break;
        if (::unlink(m->path->c_str()) == 0) {
          done.push_back(m->uid);
          break;
        }
        if (errno != ENOENT) {
          e = io_error(errno, "unlink " + *m->path);
          break;
        }
        // Finish what is done first: a rescan would otherwise see these as vanished too.
        im.record_expunges(done);
        done.clear();
        if (auto se = im.sync_locked(true, changed); !se.ok()) e = se;
      }
    }
    if (!done.empty()) {
      im.record_expunges(done);
      changed = true;
    }
    im.own_change(cur_before);
    im.flush_index();
    if (changed) im.publish();
  }
  if (changed) impl_->notify();
  return e;
}

StoreError Mailbox::copy_to(const std::vector<uint32_t>& uids, Mailbox& dest, std::vector<uint32_t>& copied,
                            std::vector<uint32_t>& new_uids) {
  // Source side under the source lock: the files linked (or copied) into dest's tmp/.
  std::vector<NewFile> files;
  std::vector<uint32_t> from;
  StoreError e;
  {
    std::lock_guard lock(impl_->mu_);
    Impl& im = *impl_;
    bool changed = false;
    e = im.sync_locked(false, changed, true);
    if (changed) im.publish();
    for (size_t i = 0; e.ok() && i < uids.size(); ++i) {
      const MessageMeta* m = im.find(uids[i]);
      if (!m) continue;
      NewFile nf;
      nf.size = m->size;
      nf.vsize = m->vsize;
      nf.base = unique_name(m->size, m->vsize);
      nf.tmp_path = dest.impl_->path_ + "/tmp/" + nf.base;
      nf.flags = m->flags;
      nf.internal_date = m->internal_date;
      for (int k = 0; k < 26; ++k)
        if ((m->keywords & (1u << k)) && static_cast<size_t>(k) < im.cur_.keywords.size())
          nf.keywords.push_back(im.cur_.keywords[k]);
      nf.other = parse_info(file_part(*m->path), im.cur_.keywords.size()).other;
      if (::link(m->path->c_str(), nf.tmp_path.c_str()) != 0) {
        std::string content;
        int err = read_file(*m->path, content);
        struct stat st;  // the date the copy keeps, when not known yet
        if (err == 0 && nf.internal_date == kUnknownDate) {
          err = ::stat(m->path->c_str(), &st) == 0 ? 0 : errno;
          if (err == 0) nf.internal_date = st.st_mtime;
        }
        if (err == ENOENT) continue;  // expunged meanwhile
        int fd = err == 0 ? ::open(nf.tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
        if (err == 0 && fd < 0) err = errno;
        if (fd >= 0) {
          dest.impl_->chown_fd(fd);
          timespec times[2] = {{nf.internal_date, 0}, {nf.internal_date, 0}};
          err = write_all(fd, content);
          if (err == 0 && ::futimens(fd, times) != 0) err = errno;
          if (err == 0 && ::fsync(fd) != 0) err = errno;
          ::close(fd);
        }
        if (err != 0) {
          ::unlink(nf.tmp_path.c_str());
          e = io_error(err, "copy into " + nf.tmp_path);
          break;
        }
      }
      from.push_back(m->uid);
      files.push_back(std::move(nf));
    }
  }
  if (!e.ok()) {
    for (const auto& f : files) ::unlink(f.tmp_path.c_str());
    return e;
  }
  if (files.empty()) return {};
  std::vector<uint32_t> assigned;
  bool changed = false;
  {
    std::lock_guard lock(dest.impl_->mu_);
    e = dest.impl_->add_files(files, assigned, changed);
    if (changed) dest.impl_->publish();
  }
  if (changed) dest.impl_->notify();
  if (!e.ok()) return e;
  copied.insert(copied.end(), from.begin(), from.end());
  new_uids.insert(new_uids.end(), assigned.begin(), assigned.end());
  return {};
}

Result<std::string> Mailbox::read(uint32_t uid) const {
  for (int attempt = 0; attempt < 2; ++attempt) {
    SharedText path;
    uint64_t size = 0;
    bool changed = false;
    {
      std::lock_guard lock(impl_->mu_);
      if (attempt > 0) {
        (void)impl_->sync_locked(true, changed);
        if (changed) impl_->publish();
      }
      if (const MessageMeta* m = impl_->find(uid)) {
        path = m->path;
        size = m->size;
      }
    }
    if (changed) impl_->notify();
    if (!path) break;
    std::string content;
    auto [dir, name] = impl_->at(*path);
    int err = read_file_at(dir, name, content, size);
    if (err == 0) return content;
    if (err != ENOENT) return Error{fmt::format("read {}: {}", *path, std::strerror(err))};
  }
  return Error{fmt::format("UID {} expunged", uid)};
}

namespace {

// Counts the vsizes of `unknown` (UIDs whose vsize is not known) in their files, on several threads.
void count_in_files(Mailbox& mailbox, const std::vector<uint32_t>& unknown) {
  std::vector<std::pair<uint32_t, uint64_t>> counted(unknown.size(), {0, kUnknownVsize});
  parallel_for(unknown.size(), 32, 8, [&](size_t i) {
    if (auto content = mailbox.read(unknown[i])) counted[i] = {unknown[i], crlf_size(*content)};
  });
  mailbox.set_vsizes(counted);
}

}  // namespace

void Mailbox::count_vsizes(const std::vector<uint32_t>& uids) {
  std::vector<uint32_t> unknown;
  {
    std::lock_guard lock(impl_->mu_);
    for (uint32_t uid : uids)
      if (const MessageMeta* m = impl_->find(uid); m && m->vsize == kUnknownVsize) unknown.push_back(uid);
  }
  count_in_files(*this, unknown);
}

void Mailbox::count_vsizes() {
  std::vector<uint32_t> unknown;
  {
    std::lock_guard lock(impl_->mu_);
    for (const auto& m : impl_->cur_.messages)
      if (m.vsize == kUnknownVsize) unknown.push_back(m.uid);
  }
  count_in_files(*this, unknown);
}

void Mailbox::stat_dates(const std::vector<uint32_t>& uids) {
  std::vector<uint32_t> unknown;
  {
    std::lock_guard lock(impl_->mu_);
    for (uint32_t uid : uids)
      if (const MessageMeta* m = impl_->find(uid); m && m->internal_date == kUnknownDate)
        unknown.push_back(uid);
  }
  // A file renamed meanwhile (its flags changed by another program) is looked for again after a sync.
  for (int attempt = 0; attempt < 2 && !unknown.empty(); ++attempt) {
    std::vector<SharedText> paths(unknown.size());
    bool synced = false;
    {
      std::lock_guard lock(impl_->mu_);
      if (attempt > 0) (void)impl_->sync_locked(true, synced);
      if (synced) impl_->publish();
      for (size_t i = 0; i < unknown.size(); ++i)
        if (const MessageMeta* m = impl_->find(unknown[i])) paths[i] = m->path;
    }
    if (synced) impl_->notify();
    std::vector<int64_t> dates(unknown.size(), kUnknownDate);
    parallel_for(unknown.size(), 64, 8, [&](size_t i) {
      struct stat st;
      if (!paths[i]) return;
      auto [dir, name] = impl_->at(*paths[i]);
      if (::fstatat(dir, name, &st, 0) == 0) dates[i] = st.st_mtime;
    });
    std::vector<uint32_t> again;
    std::lock_guard lock(impl_->mu_);
    Impl& im = *impl_;
    bool changed = false;
    for (size_t i = 0; i < unknown.size(); ++i) {
      MessageMeta* m = im.find(unknown[i]);
      if (!m || m->internal_date != kUnknownDate) continue;
      if (dates[i] == kUnknownDate) {
        again.push_back(unknown[i]);
        continue;
      }
      m->internal_date = dates[i];
      put_meta(im.pending_, *m);
      changed = true;
    }
    if (changed) im.publish();
    unknown = std::move(again);
  }
}

void Mailbox::set_vsizes(const std::vector<std::pair<uint32_t, uint64_t>>& vsizes) {
  std::lock_guard lock(impl_->mu_);
  Impl& im = *impl_;
  bool changed = false;
  for (auto [uid, vsize] : vsizes) {
    MessageMeta* m = vsize == kUnknownVsize ? nullptr : im.find(uid);
    if (!m || m->vsize != kUnknownVsize) continue;
    m->vsize = vsize;
    put_meta(im.pending_, *m);
    changed = true;
  }
  if (changed) im.publish();
}

std::optional<std::string> Mailbox::Impl::cached_locked(uint32_t uid, CacheField field) const {
  auto it = cache_.find(uid);
  if (it == cache_.end() || index_fd_ < 0) return std::nullopt;
  const CacheRef& ref = it->second[static_cast<size_t>(field)];
  if (!ref.present) return std::nullopt;
  if (ref.offset + ref.length > index_size_) {  // not written yet (put_cache)
    size_t at = static_cast<size_t>(ref.offset - index_size_);
    if (at + ref.length > pending_.size()) return std::nullopt;
    return pending_.substr(at, ref.length);
  }
  std::string value(ref.length, '\0');
  if (::pread(index_fd_, value.data(), ref.length, static_cast<off_t>(ref.offset)) !=
      static_cast<ssize_t>(ref.length))
    return std::nullopt;
  return value;
}

std::optional<std::string> Mailbox::cached(uint32_t uid, CacheField field) const {
  std::lock_guard lock(impl_->mu_);
  return impl_->cached_locked(uid, field);
}

std::vector<std::optional<std::string>> Mailbox::cached(const std::vector<uint32_t>& uids,
                                                        CacheField field) const {
  std::vector<std::optional<std::string>> out;
  out.reserve(uids.size());
  std::lock_guard lock(impl_->mu_);
  for (uint32_t uid : uids) out.push_back(impl_->cached_locked(uid, field));
  return out;
}

void Mailbox::put_cache(uint32_t uid, CacheField field, std::string value) {
  std::lock_guard lock(impl_->mu_);
  Impl& im = *impl_;
  if (!im.find(uid) || im.index_fd_ < 0) return;
  std::string p = "C";
  put_u32(p, uid);
  p += static_cast<char>(field);
  p += value;
  // The reference first: a compaction right after the write carries the value over. The record waits in
  // pending_ with others (a cold FETCH of n messages wrote 2n times); cached_locked reads it from there.
  im.cache_[uid][static_cast<size_t>(field)] = {im.index_size_ + im.pending_.size() + 4 + 6,
                                                static_cast<uint32_t>(value.size()), true};
  put_record(im.pending_, p);
  constexpr size_t kFlushAt = 64 * 1024;
  if (im.pending_.size() >= kFlushAt) im.flush_index();
}

void Mailbox::write_cache() {
  std::lock_guard lock(impl_->mu_);
  impl_->flush_index();
}

uint32_t Mailbox::take_recent(uint32_t uidnext) {
  std::lock_guard lock(impl_->mu_);
  Impl& im = *impl_;
  uint32_t old = im.recent_mark_;
  if (uidnext > old) {
    im.recent_mark_ = uidnext;
    std::string p = "R";
    put_u32(p, uidnext);
    put_record(im.pending_, p);
    im.flush_index();
  }
  return old;
}

int Mailbox::watch(std::function<void()> on_change) {
  std::lock_guard lock(impl_->watch_mu_);
  int id = impl_->next_watch_++;
  impl_->watchers_.emplace(id, std::move(on_change));
  return id;
}

void Mailbox::unwatch(int id) {
  std::lock_guard lock(impl_->watch_mu_);
  impl_->watchers_.erase(id);
}

}  // namespace postern::store::maildir

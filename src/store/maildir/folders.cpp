// store/maildir/folders.cpp: Maildir++ folders as Dovecot 2.3 lays them out (LAYOUT=maildir++). Mailbox
// "a/b" is the directory ".a.b" of the root, each level modified UTF-7; "INBOX/x" is ".INBOX.x". Names are
// checked as Dovecot checks new names ('.' and '/' in a level, '~' first, empty levels and controls are
// refused), and a directory is listed only when its name maps back to exactly that directory.
// Deletion renames the folder to Dovecot's ".DOVECOT-TRASHED" first (a crash leaves no half-deleted
// mailbox) and then empties it with openat/unlinkat, never following a symlink; a symlinked folder loses
// only its link. Subscriptions are Dovecot's "subscriptions" file ("V\t2\n\n", then one name a line, levels
// in storage form joined by TAB), replaced atomically.
// Security: names come from the network; nothing outside the root is created, renamed or removed.

#include "store/maildir/folders.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/mutf7.hpp"
#include "base/strings.hpp"
#include "store/maildir/mailbox.hpp"

namespace postern::store::maildir {
namespace {

constexpr size_t kMaxDirName = 255;                      // NAME_MAX: ".a.b" is one directory entry
constexpr int kMaxTreeDepth = 16;                        // a folder holds cur/new/tmp; Dovecot adds little
constexpr std::string_view kTrash = ".DOVECOT-TRASHED";  // Dovecot's name for a folder being deleted
constexpr std::string_view kSubscriptionsHeader = "V\t2\n\n";
const char* const kDefaultFolders[] = {"Drafts", "Sent", "Trash", "Templates"};

// Serialises read-modify-write of subscription files within the process (all sessions share it).
std::mutex g_subscriptions_mutex;

bool is_inbox(std::string_view name) {
  return iequals(name, "INBOX");
}

FolderResult fail(FolderError error, std::string detail) {
  return FolderResult{error, std::move(detail)};
}

// The on-disk entry (".a.b") of mailbox `name`, or why the name is refused. INBOX itself has none ("").
Result<std::string> dir_name(std::string_view name, char separator) {
  if (name.empty()) return Error{"empty mailbox name"};
  if (!valid_utf8(name)) return Error{"mailbox name is not UTF-8"};
  if (name.front() == '~') return Error{"mailbox name begins with '~'"};
  if (is_inbox(name)) return std::string();
  std::string dir;
  std::vector<std::string_view> levels = split(name, separator);
  if (name.back() == separator) levels.emplace_back();
  for (size_t i = 0; i < levels.size(); ++i) {
    std::string_view level = levels[i];
    if (level.empty()) return Error{"empty level in mailbox name"};
    for (unsigned char c : level) {
      if (c < 0x20 || c == 0x7f) return Error{"control character in mailbox name"};
      if (c == '.' || c == '/') return Error{fmt::format("character not allowed in mailbox name: '{}'", c)};
    }
    std::optional<std::string> encoded = mutf7_encode(i == 0 && is_inbox(level) ? "INBOX" : level);
    if (!encoded) return Error{"mailbox name is not UTF-8"};
    dir += '.';
    dir += *encoded;
  }
  if (dir == kTrash) return Error{"mailbox name is reserved"};
  if (dir.size() > kMaxDirName) return Error{"mailbox name too long"};
  return dir;
}

// The mailbox name of the on-disk entry `dir`, when `dir` is exactly what dir_name() makes of it.
std::optional<std::string> name_of_dir(std::string_view dir, char separator) {
  if (dir.size() < 2 || dir[0] != '.') return std::nullopt;
  std::string name;
  for (std::string_view level : split(dir.substr(1), '.')) {
    std::optional<std::string> decoded = mutf7_decode(level);
    if (!decoded) return std::nullopt;
    if (!name.empty()) name += separator;
    name += *decoded;
  }
  Result<std::string> back = dir_name(name, separator);
  if (!back || *back != dir) return std::nullopt;
  return name;
}

// Whether `name` in the directory `dirfd` is a directory, following a symlink as Dovecot does for listing.
bool is_directory_at(int dirfd, const char* name, unsigned char type) {
  if (type == DT_DIR) return true;
  if (type != DT_LNK && type != DT_UNKNOWN) return false;
  struct stat st;
  return ::fstatat(dirfd, name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

// The folder directories in the Maildir `root` (".x" entries that are directories, or symlinks to them).
std::vector<std::string> folder_entries(const std::string& root) {
  std::vector<std::string> out;
  DIR* d = ::opendir(root.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n.size() < 2 || n[0] != '.' || n == ".." || n == kTrash) continue;
    if (is_directory_at(::dirfd(d), e->d_name, e->d_type)) out.emplace_back(n);
  }
  ::closedir(d);
  return out;
}

// Empties the directory `name` in `parentfd` and removes it; symlinks inside are removed, never followed.
// 0 or an errno value. Entries that vanish meanwhile (a concurrent delete) are not an error.
int remove_tree(int parentfd, const char* name, int depth) {
  if (depth > kMaxTreeDepth) return ELOOP;
  int fd = ::openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : errno;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int err = errno;
    ::close(fd);
    return err;
  }
  int err = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st;
    if (::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) err = errno;
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      if (int e2 = remove_tree(fd, e->d_name, depth + 1); e2 != 0) err = e2;
    } else if (::unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT) {
      err = errno;
    }
  }
  ::closedir(d);
  if (err != 0) return err;
  if (::unlinkat(parentfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) return errno;
  return 0;
}

// One line of the subscriptions file (version 2) for the mailbox whose entry is `dir` (".a.b"): the levels
// joined by TAB. Levels never hold what Dovecot tab-escapes (controls are refused).
std::string subscription_line(std::string_view dir) {
  if (dir.empty()) return "INBOX";
  std::string line(dir.substr(1));
  std::replace(line.begin(), line.end(), '.', '\t');
  return line;
}

// Undoes Dovecot's tab-escaping of one level (\001 followed by '1', 't', 'r' or 'n').
std::optional<std::string> tab_unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\001') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) return std::nullopt;
    switch (s[i]) {
      case '1':
        out += '\001';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'n':
        out += '\n';
        break;
      default:
        return std::nullopt;
    }
  }
  return out;
}

// The lines of a subscriptions file in version 2 form. A version 1 file (no header) names mailboxes in
// storage form with '.' between levels.
std::vector<std::string> subscription_lines(std::string_view text) {
  bool v2 = text.substr(0, kSubscriptionsHeader.size()) == kSubscriptionsHeader;
  if (v2) text.remove_prefix(kSubscriptionsHeader.size());
  std::vector<std::string> out;
  for (std::string_view line : split(text, '\n')) {
    if (line.empty()) continue;
    std::string l(line);
    if (!v2) std::replace(l.begin(), l.end(), '.', '\t');
    out.push_back(std::move(l));
  }
  return out;
}

// The mailbox name of a version 2 subscription line, if it is one Folders accepts.
std::optional<std::string> name_of_line(std::string_view line, char separator) {
  if (line == "INBOX") return std::string("INBOX");
  std::string dir;
  for (std::string_view level : split(line, '\t')) {
    std::optional<std::string> raw = tab_unescape(level);
    if (!raw) return std::nullopt;
    dir += '.';
    dir += *raw;
  }
  return name_of_dir(dir, separator);
}

bool lstat_at(int dirfd, const std::string& name, struct stat& st) {
  return ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

// Moves every file of `from` (a directory) into `to` with rename; 0 or an errno value.
int move_files(const std::string& from, const std::string& to) {
  DIR* d = ::opendir(from.c_str());
  if (!d) return errno == ENOENT ? 0 : errno;
  int err = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (::rename((from + "/" + e->d_name).c_str(), (to + "/" + e->d_name).c_str()) != 0 && errno != ENOENT)
      err = errno;
  }
  ::closedir(d);
  return err;
}

// Closes a descriptor when it goes out of scope.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Folders::Folders(std::string root, char separator, Owner owner)
    : root_(std::move(root)), separator_(separator), owner_(owner) {}

Result<std::string> Folders::path_of(std::string_view name) const {
  Result<std::string> dir = dir_name(name, separator_);
  if (!dir) return dir.error();
  if (dir->empty()) return root_;
  return root_ + "/" + *dir;
}

Folders::Listing Folders::list() const {
  std::set<std::string> names;
  for (const std::string& dir : folder_entries(root_))
    if (std::optional<std::string> name = name_of_dir(dir, separator_)) names.insert(std::move(*name));
  std::set<std::string> parents;
  for (const std::string& name : names) {
    for (size_t sep = name.find(separator_); sep != std::string::npos; sep = name.find(separator_, sep + 1)) {
      std::string parent = name.substr(0, sep);
      if (parent != "INBOX" && !names.count(parent)) parents.insert(std::move(parent));
    }
  }
  Listing out;
  out.mailboxes.push_back("INBOX");
  out.mailboxes.insert(out.mailboxes.end(), names.begin(), names.end());
  out.nonexistent.assign(parents.begin(), parents.end());
  return out;
}

bool Folders::exists(std::string_view name) const {
  Result<std::string> path = path_of(name);
  struct stat st;
  return path && ::stat(path->c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

FolderResult Folders::create(std::string_view name) {
  // A trailing separator only says that children will follow (RFC 3501 6.3.3): Dovecot creates "a" for "a/".
  if (name.size() > 1 && name.back() == separator_) name.remove_suffix(1);
  Result<std::string> dir = dir_name(name, separator_);
  if (!dir) return fail(FolderError::kInvalidName, dir.error().message);
  if (dir->empty()) return fail(FolderError::kExists, "INBOX always exists");
  struct stat st;
  if (::lstat((root_ + "/" + *dir).c_str(), &st) == 0) return fail(FolderError::kExists, "mailbox exists");
  if (auto made = make_maildir(root_, owner_); !made) return fail(FolderError::kIo, made.error().message);
  if (auto made = make_folder(root_, std::string_view(*dir).substr(1), owner_); !made)
    return fail(FolderError::kIo, made.error().message);
  return {};
}

FolderResult Folders::remove(std::string_view name) {
  Result<std::string> dir = dir_name(name, separator_);
  if (!dir) return fail(FolderError::kInvalidName, dir.error().message);
  if (dir->empty()) return fail(FolderError::kInvalidName, "INBOX cannot be deleted");
  Fd root{::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (root.fd < 0) return fail(FolderError::kNotFound, "mailbox does not exist");
  struct stat st;
  if (!lstat_at(root.fd, *dir, st)) {
    if (errno == ENOENT) return fail(FolderError::kNotFound, "mailbox does not exist");
    return fail(FolderError::kIo, fmt::format("{}/{}: {}", root_, *dir, std::strerror(errno)));
  }
  if (S_ISLNK(st.st_mode)) {
    // A folder that is a symlink (a shared folder): the link goes, whatever it points at stays.
    Mailbox::forget(root_ + "/" + *dir);
    if (::unlinkat(root.fd, dir->c_str(), 0) != 0)
      return fail(FolderError::kIo, fmt::format("{}/{}: {}", root_, *dir, std::strerror(errno)));
    return {};
  }
  if (!S_ISDIR(st.st_mode)) return fail(FolderError::kNotFound, "mailbox does not exist");
  Mailbox::forget(root_ + "/" + *dir);
  // Out of sight first; a trash left by an earlier crash is removed before it is reused.
  const std::string trash(kTrash);
  if (::renameat(root.fd, dir->c_str(), root.fd, trash.c_str()) != 0) {
    if (errno != ENOTEMPTY && errno != EEXIST)
      return fail(FolderError::kIo, fmt::format("rename {}/{}: {}", root_, *dir, std::strerror(errno)));
    if (int err = remove_tree(root.fd, trash.c_str(), 0); err != 0)
      return fail(FolderError::kIo, fmt::format("{}/{}: {}", root_, trash, std::strerror(err)));
    if (::renameat(root.fd, dir->c_str(), root.fd, trash.c_str()) != 0)
      return fail(FolderError::kIo, fmt::format("rename {}/{}: {}", root_, *dir, std::strerror(errno)));
  }
  if (int err = remove_tree(root.fd, trash.c_str(), 0); err != 0)
    return fail(FolderError::kIo, fmt::format("{}/{}: {}", root_, trash, std::strerror(err)));
  return {};
}

FolderResult Folders::rename(std::string_view from, std::string_view to) {
  Result<std::string> src = dir_name(from, separator_);
  if (!src) return fail(FolderError::kInvalidName, src.error().message);
  Result<std::string> dst = dir_name(to, separator_);
  if (!dst) return fail(FolderError::kInvalidName, dst.error().message);
  if (dst->empty()) return fail(FolderError::kExists, "INBOX exists");
  if (*src == *dst) return fail(FolderError::kExists, "mailbox exists");
  if (!src->empty() && dst->size() > src->size() && dst->compare(0, src->size() + 1, *src + ".") == 0)
    return fail(FolderError::kInvalidName, "cannot rename a mailbox under itself");
  Fd root{::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (root.fd < 0) return fail(FolderError::kNotFound, "mailbox does not exist");
  struct stat st;
  if (lstat_at(root.fd, *dst, st)) return fail(FolderError::kExists, "mailbox exists");

  if (src->empty()) {
    // RFC 3501 6.3.5: INBOX's messages move to the new mailbox, INBOX stays (empty), its children stay.
    if (auto made = make_folder(root_, std::string_view(*dst).substr(1), owner_); !made)
      return fail(FolderError::kIo, made.error().message);
    std::string target = root_ + "/" + *dst;
    if (auto keywords = read_file(root_ + "/dovecot-keywords"))
      (void)write_file_atomically(target + "/dovecot-keywords", *keywords, 0600);
    for (const char* sub : {"/cur", "/new"})
      if (int err = move_files(root_ + sub, target + sub); err != 0)
        return fail(FolderError::kIo, fmt::format("move {}{}: {}", root_, sub, std::strerror(err)));
    return {};
  }

  // The folder and its children (".a" and ".a.*"), each moved to the same place under the new name. A
  // parent that exists only through its children is renamed through them, as Dovecot does.
  std::vector<std::pair<std::string, std::string>> moves;
  for (const std::string& entry : folder_entries(root_)) {
    if (entry != *src && entry.compare(0, src->size() + 1, *src + ".") != 0) continue;
    std::string target = *dst + entry.substr(src->size());
    if (target.size() > kMaxDirName) return fail(FolderError::kInvalidName, "mailbox name too long");
    if (lstat_at(root.fd, target, st)) return fail(FolderError::kExists, "a child's new name exists");
    moves.emplace_back(entry, std::move(target));
  }
  if (moves.empty()) return fail(FolderError::kNotFound, "mailbox does not exist");
  Mailbox::forget(root_ + "/" + *src);
  for (const auto& [old_dir, new_dir] : moves)
    if (::renameat(root.fd, old_dir.c_str(), root.fd, new_dir.c_str()) != 0)
      return fail(FolderError::kIo, fmt::format("rename {}/{}: {}", root_, old_dir, std::strerror(errno)));
  return {};
}

std::vector<std::string> Folders::subscriptions() const {
  std::vector<std::string> out;
  Result<std::string> text = read_file(root_ + "/subscriptions");
  if (!text) return out;
  for (const std::string& line : subscription_lines(*text)) {
    std::optional<std::string> name = name_of_line(line, separator_);
    if (name && std::find(out.begin(), out.end(), *name) == out.end()) out.push_back(std::move(*name));
  }
  return out;
}

FolderResult Folders::subscribe(std::string_view name, bool on) {
  Result<std::string> dir = dir_name(name, separator_);
  if (!dir) return fail(FolderError::kInvalidName, dir.error().message);
  if (on && !exists(name)) return fail(FolderError::kNotFound, "mailbox does not exist");
  std::string wanted = subscription_line(*dir);
  std::string path = root_ + "/subscriptions";

  std::lock_guard lock(g_subscriptions_mutex);
  std::vector<std::string> lines;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    Result<std::string> old = read_file(path);
    if (!old) return fail(FolderError::kIo, old.error().message);
    lines = subscription_lines(*old);
  }
  auto found = std::find(lines.begin(), lines.end(), wanted);
  if (on == (found != lines.end())) return {};
  if (on) {
    lines.push_back(std::move(wanted));
  } else {
    lines.erase(std::remove(lines.begin(), lines.end(), wanted), lines.end());
  }
  std::string text(kSubscriptionsHeader);
  for (const std::string& line : lines) text += line + "\n";
  if (auto written = write_file_atomically(path, text, 0600); !written)
    return fail(FolderError::kIo, written.error().message);
  if (owner_.chown && ::chown(path.c_str(), owner_.uid, owner_.gid) != 0)
    return fail(FolderError::kIo, fmt::format("chown {}: {}", path, std::strerror(errno)));
  return {};
}

void Folders::ensure_defaults(const std::vector<std::string>& names) {
  std::vector<std::string> all(std::begin(kDefaultFolders), std::end(kDefaultFolders));
  all.insert(all.end(), names.begin(), names.end());
  for (const std::string& name : all)
    if (!exists(name) && create(name).ok()) (void)subscribe(name, true);
}

}  // namespace postern::store::maildir

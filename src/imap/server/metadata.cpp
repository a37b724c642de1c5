// imap/server/metadata.cpp: GETMETADATA and SETMETADATA (RFC 5464) on the server ("" mailbox) and on
// mailboxes. /private and /shared entries are both the user's own (the mailboxes are single-user, as Dovecot
// treats a user's own mailboxes). Computed, read-only entries: the server's /shared/admin and /shared/comment
// (mail_server_admin, mail_server_comment) and a mailbox's /private/specialuse (RFC 6154 5). Storage in
// imap/server/metadata_store.
// Security: every argument is untrusted: entry names are checked by imap/proto/metadata before use, values
// are bounded (imap_metadata_max_size), the number of entries per mailbox too (imap_metadata_max_entries).
#include <algorithm>

#include <fmt/format.h>

#include "base/log.hpp"
#include "imap/proto/metadata.hpp"
#include "imap/proto/writer.hpp"
#include "imap/server/metadata_store.hpp"
#include "imap/server/session.hpp"

namespace postern::imap::server {

using proto::Command;
using proto::Token;

struct Session::MetadataTarget {
  std::string name;  // the IMAP mailbox name; empty for the server
  std::string dir;   // where the file is
  std::string_view file;
  proto::MetadataEntries computed;
  std::vector<std::string_view> read_only;  // entries SETMETADATA may not change
};

namespace {

constexpr std::string_view kInternalError =
    "[SERVERBUG] Internal error occurred. Refer to server log for more information.";

}  // namespace

Result<Session::MetadataTarget> Session::metadata_target(const Token& mailbox) const {
  MetadataTarget t;
  t.dir = account_->maildir;
  if (mailbox.type == Token::Type::kString && mailbox.value.empty()) {
    t.file = kServerMetadataFile;
    if (!settings_.server_admin.empty()) t.computed["/shared/admin"] = settings_.server_admin;
    if (!settings_.server_comment.empty()) t.computed["/shared/comment"] = settings_.server_comment;
    t.read_only = {"/shared/admin", "/shared/comment"};
    return t;
  }
  auto name = mailbox_name(mailbox);
  if (!name) return Error{"[CANNOT] Invalid mailbox name."};
  auto path = folders_->path_of(*name);
  if (!path) return Error{"[CANNOT] Invalid mailbox name."};
  if (*name != "INBOX" && !folders_->exists(*name))
    return Error{"[NONEXISTENT] Mailbox doesn't exist: " + *name};
  t.name = *name;
  t.dir = *path;
  t.file = kMailboxMetadataFile;
  if (std::string use = special_use(*name); !use.empty()) t.computed["/private/specialuse"] = use;
  t.read_only = {"/private/specialuse"};
  return t;
}

Next Session::cmd_getmetadata(const Command& c, std::string& out) {
  if (!settings_.metadata) return bad(c.tag, "Unknown command.", out);
  auto args = proto::parse_getmetadata(c);
  if (!args) return bad(c.tag, args.error().message, out);
  auto target = metadata_target(*args->mailbox);
  if (!target) return no(c.tag, target.error().message, out);
  auto entries = load_metadata(target->dir, target->file);
  if (!entries) {
    log::error("imap", "user={}: {}", account_->user, entries.error().message);
    return no(c.tag, kInternalError, out);
  }
  for (auto& [name, value] : target->computed) (*entries)[name] = value;
  // Entries asked for are answered, NIL when absent (without DEPTH, as Dovecot; RFC 5464 4.2.2: "if it
  // exists"); those below them only when present. Values larger than MAXSIZE are left out and the largest of
  // their sizes reported (LONGENTRIES).
  std::string list;
  uint64_t longest = 0;
  auto add = [&](const std::string& name, const std::string* value) {
    if (value && args->maxsize && value->size() > *args->maxsize) {
      longest = std::max<uint64_t>(longest, value->size());
      return;
    }
    if (!list.empty()) list += ' ';
    proto::append_astring(list, name);
    list += ' ';
    if (value)
      proto::append_metadata_value(list, *value);
    else
      list += "NIL";
  };
  for (const std::string& name : args->entries) {
    auto it = entries->find(name);
    if (it != entries->end())
      add(name, &it->second);
    else if (args->depth == proto::MetadataDepth::kZero)
      add(name, nullptr);
    for (const std::string& below : proto::metadata_below(*entries, name, args->depth))
      add(below, &entries->at(below));
  }
  if (!list.empty())
    out +=
        fmt::format("* METADATA {} ({})\r\n", target->name.empty() ? "\"\"" : wire_name(target->name), list);
  if (longest)
    return ok(c.tag, fmt::format("[METADATA LONGENTRIES {}] Getmetadata completed.", longest), out);
  return ok(c.tag, "Getmetadata completed.", out);
}

Next Session::cmd_setmetadata(const Command& c, std::string& out) {
  if (!settings_.metadata) return bad(c.tag, "Unknown command.", out);
  auto args = proto::parse_setmetadata(c);
  if (!args) return bad(c.tag, args.error().message, out);
  auto target = metadata_target(*args->mailbox);
  if (!target) return no(c.tag, target.error().message, out);
  for (const auto& [name, value] : args->entries) {
    if (name == "/private" || name == "/shared")
      return no(c.tag, "[CANNOT] /private and /shared hold no value themselves.", out);
    if (std::find(target->read_only.begin(), target->read_only.end(), name) != target->read_only.end())
      return no(c.tag, fmt::format("[NOPERM] {} is set by the server.", name), out);
    if (value && value->size() > settings_.metadata_max_size)
      return no(c.tag,
                fmt::format("[METADATA MAXSIZE {}] Entry value too large.", settings_.metadata_max_size),
                out);
  }
  auto update = update_metadata(target->dir, target->file, args->entries, settings_.metadata_max_entries,
                                account_->owner);
  if (!update) {
    log::error("imap", "user={}: {}", account_->user, update.error().message);
    return no(c.tag, kInternalError, out);
  }
  if (update->too_many) return no(c.tag, "[METADATA TOOMANY] Too many metadata entries.", out);
  return ok(c.tag, "Setmetadata completed.", out);
}

}  // namespace postern::imap::server

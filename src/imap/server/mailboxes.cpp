// imap/server/mailboxes.cpp: the commands on mailboxes as a whole (SELECT/EXAMINE, CREATE, DELETE, RENAME,
// SUBSCRIBE, LIST/LSUB with LIST-EXTENDED and LIST-STATUS, NAMESPACE, STATUS, APPEND, IDLE, CLOSE/UNSELECT,
// GETQUOTA) and the reporting of changes to the selected mailbox.
#include <algorithm>
#include <ctime>

#include <fmt/format.h>

#include "base/log.hpp"
#include "base/strings.hpp"
#include "imap/proto/writer.hpp"
#include "imap/server/selected.hpp"
#include "imap/server/session.hpp"

namespace postern::imap::server {

using proto::Command;
using proto::Token;
namespace md = store::maildir;

namespace {

constexpr std::string_view kSystemFlags = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

// LIST pattern matching: '*' matches anything, '%' anything but the separator. Iterative with backtracking
// over the last star only (linear-ish; patterns are short).
bool match_pattern(std::string_view pat, std::string_view name, char sep) {
  if (pat.empty()) return name.empty();
  char p = pat[0];
  if (p == '*' || p == '%') {
    for (size_t i = 0; i <= name.size(); ++i) {
      if (match_pattern(pat.substr(1), name.substr(i), sep)) return true;
      if (i < name.size() && p == '%' && name[i] == sep) return false;
    }
    return false;
  }
  if (name.empty()) return false;
  return p == name[0] && match_pattern(pat.substr(1), name.substr(1), sep);
}

// INBOX matches case-insensitively (RFC 9051 6.3.9).
bool list_match(std::string_view pat, const std::string& name, char sep) {
  if (name == "INBOX" || (istarts_with(name, "INBOX") && name.size() > 5 && name[5] == sep)) {
    if (istarts_with(pat, "INBOX")) {
      std::string p(pat);
      p.replace(0, 5, "INBOX");
      return match_pattern(p, name, sep);
    }
  }
  return match_pattern(pat, name, sep);
}

uint32_t count_unseen(const md::Snapshot& s) {
  return static_cast<uint32_t>(std::count_if(s.messages.begin(), s.messages.end(),
                                             [](const auto& m) { return !(m.flags & md::kSeen); }));
}

}  // namespace

std::string Session::flags_list(const md::MessageMeta& m, const md::Snapshot& snap, bool recent) const {
  std::string out = "(";
  auto add = [&](std::string_view f) {
    if (out.size() > 1) out += ' ';
    out += f;
  };
  if (m.flags & md::kAnswered) add("\\Answered");
  if (m.flags & md::kFlagged) add("\\Flagged");
  if (m.flags & md::kDeleted) add("\\Deleted");
  if (m.flags & md::kSeen) add("\\Seen");
  if (m.flags & md::kDraft) add("\\Draft");
  for (size_t i = 0; i < snap.keywords.size() && i < 32; ++i)
    if (m.keywords & (1u << i)) add(snap.keywords[i]);
  if (recent && !rev2_) add("\\Recent");  // IMAP4rev2 has no \Recent (RFC 9051 appendix E)
  return out + ")";
}

std::string Session::flags_response(const md::Snapshot& snap) const {
  std::string kw;
  for (const auto& k : snap.keywords) kw += " " + k;
  return fmt::format("* FLAGS ({}{})\r\n* OK [PERMANENTFLAGS ({}{} \\*)] Flags permitted.\r\n", kSystemFlags,
                     kw, kSystemFlags, kw);
}

uint32_t Session::seq_of(uint32_t uid) const {
  const auto& u = selected_->uids;
  auto it = std::lower_bound(u.begin(), u.end(), uid);
  return it != u.end() && *it == uid ? static_cast<uint32_t>(it - u.begin() + 1) : 0;
}

void Session::report_changes(std::string& out, bool allow_expunge, bool with_uid) {
  Selected& sel = *selected_;
  auto snap = sel.mailbox->snapshot();
  if (snap == sel.reported) return;
  const md::Snapshot& old = *sel.reported;
  if (snap->keywords != sel.keywords) {
    out += flags_response(*snap);
    sel.keywords = snap->keywords;
  }
  // Expunged: in the view but not in the mailbox. Reported highest first, so no number shifts. UIDs only
  // grow, so when the mailbox holds as many messages up to the view's last UID as the view does, none is
  // gone (no lookup per message).
  uint32_t last_seen = sel.uids.empty() ? 0 : sel.uids.back();
  auto upto = std::upper_bound(snap->messages.begin(), snap->messages.end(), last_seen,
                               [](uint32_t u, const md::MessageMeta& m) { return u < m.uid; });
  bool any_gone = static_cast<size_t>(upto - snap->messages.begin()) != sel.uids.size();
  bool pending_expunge = false;
  if (any_gone && allow_expunge) {
    std::vector<uint32_t> vanished;
    for (size_t i = sel.uids.size(); i-- > 0;) {
      if (snap->find(sel.uids[i])) continue;
      if (qresync_) {
        vanished.push_back(sel.uids[i]);
      } else {
        out += fmt::format("* {} EXPUNGE\r\n", i + 1);
      }
      sel.recent.erase(sel.uids[i]);
      sel.uids.erase(sel.uids.begin() + static_cast<long>(i));
    }
    if (!vanished.empty()) {
      std::reverse(vanished.begin(), vanished.end());
      out += "* VANISHED " + proto::format_seqset(vanished) + "\r\n";
    }
  } else if (any_gone) {
    pending_expunge =
        std::any_of(sel.uids.begin(), sel.uids.end(), [&](uint32_t u) { return !snap->find(u); });
  }
  // Flag changes of messages already in the view (looked up in UID order: `near` is where the next may be).
  size_t near = 0;
  for (const auto& m : snap->messages) {
    if (m.modseq <= old.highest_modseq) continue;
    const md::MessageMeta* before = old.find(m.uid, near);
    if (!before) continue;
    if (sel.silent.erase(m.uid)) continue;  // our own STORE .SILENT or FETCH's implicit \Seen
    if (before->flags == m.flags && before->keywords == m.keywords) continue;
    uint32_t seq = seq_of(m.uid);
    if (!seq) continue;
    out += fmt::format("* {} FETCH (", seq);
    if (with_uid) out += fmt::format("UID {} ", m.uid);
    out += "FLAGS " + flags_list(m, *snap, sel.recent.count(m.uid) > 0);
    if (condstore_) out += fmt::format(" MODSEQ ({})", m.modseq);
    out += ")\r\n";
  }
  sel.silent.clear();
  // New messages.
  uint32_t last = sel.uids.empty() ? 0 : sel.uids.back();
  size_t before_count = sel.uids.size();
  auto first_new = std::upper_bound(snap->messages.begin(), snap->messages.end(), last,
                                    [](uint32_t u, const md::MessageMeta& m) { return u < m.uid; });
  for (auto it = first_new; it != snap->messages.end(); ++it) sel.uids.push_back(it->uid);
  if (sel.uids.size() != before_count || allow_expunge) {
    if (sel.uids.size() != before_count) {
      uint32_t mark = sel.read_only ? snap->uidnext : sel.mailbox->take_recent(snap->uidnext);
      for (auto it = first_new; it != snap->messages.end(); ++it)
        if (it->uid >= mark) sel.recent.insert(it->uid);
      out += fmt::format("* {} EXISTS\r\n", sel.uids.size());
      if (!rev2_) out += fmt::format("* {} RECENT\r\n", sel.recent.size());
    }
  }
  // While expunges are pending the view still differs from the mailbox: keep the old snapshot's expunged
  // messages in mind by not advancing past them (they stay in `uids` until reported).
  if (!pending_expunge) {
    sel.reported = snap;
  } else {
    // Keep the expunged metadata available: build a view snapshot with them kept.
    auto merged = std::make_shared<md::Snapshot>(*snap);
    std::vector<md::MessageMeta> all(snap->messages.begin(), snap->messages.end());
    for (uint32_t u : sel.uids)
      if (!snap->find(u))
        if (const auto* m = old.find(u)) all.push_back(*m);
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.uid < b.uid; });
    merged->messages = md::MessageList(all);
    sel.reported = merged;
  }
}

std::string Session::vanished_since(uint64_t modseq, const Token* known) const {
  auto snap = selected_->mailbox->snapshot();
  std::vector<uint32_t> gone;
  // Expunges the mailbox remembers; when older ones were forgotten, every UID the client may know of
  // that is absent now (RFC 7162 3.2.5.1 lets the server include UIDs that never existed).
  bool complete =
      !snap->expunged.empty() ? snap->expunged.front().second <= modseq + 1 : modseq >= snap->highest_modseq;
  if (complete) {
    for (const auto& [uid, m] : snap->expunged)
      if (m > modseq) gone.push_back(uid);
  } else {
    auto set = known ? proto::parse_seqset(known->text()) : std::nullopt;
    uint32_t top = snap->uidnext > 0 ? snap->uidnext - 1 : 0;
    auto absent = [&](uint32_t u) { return !snap->find(u); };
    if (set) {
      for (auto [lo, hi] : set->ranges)
        for (uint32_t
                 u = std::min(lo == proto::kStar ? top : lo, hi == proto::kStar ? top : hi),
                 last = std::min(std::max(lo == proto::kStar ? top : lo, hi == proto::kStar ? top : hi), top),
                 count = 0;
             u <= last && u != 0 && count < 1000000; ++u, ++count)
          if (absent(u)) gone.push_back(u);
    } else {
      for (uint32_t u = 1; u <= top && u <= 10000000; ++u)
        if (absent(u)) gone.push_back(u);
    }
  }
  if (known) {
    if (auto set = proto::parse_seqset(known->text()))
      gone.erase(std::remove_if(gone.begin(), gone.end(),
                                [&](uint32_t u) { return !proto::seqset_contains(*set, u, UINT32_MAX); }),
                 gone.end());
  }
  std::sort(gone.begin(), gone.end());
  gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
  return proto::format_seqset(gone);
}

Next Session::cmd_select(const Command& c, std::string& out) {
  if (selected_ && (qresync_ || rev2_)) out += "* OK [CLOSED] Previous mailbox closed.\r\n";
  close_selected();
  if (c.args.empty() || c.args.size() > 2) return bad(c.tag, "Invalid arguments.", out);
  auto name = mailbox_name(c.args[0]);
  if (!name) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
  // QRESYNC (RFC 7162 3.2.5): (QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])).
  std::optional<std::pair<uint32_t, uint64_t>> resync;
  const Token* known_uids = nullptr;
  if (c.args.size() == 2) {
    if (!c.args[1].is_list()) return bad(c.tag, "Invalid SELECT parameters.", out);
    const auto& params = c.args[1].items;
    for (size_t i = 0; i < params.size(); ++i) {
      const Token& p = params[i];
      if (p.is_atom() && iequals(p.value, "CONDSTORE")) {
        condstore_ = true;
      } else if (p.is_atom() && iequals(p.value, "QRESYNC") && i + 1 < params.size() &&
                 params[i + 1].is_list()) {
        if (!qresync_) return bad(c.tag, "QRESYNC is not enabled.", out);
        const auto& q = params[++i].items;
        unsigned long long v = 0, m = 0;
        if (q.size() < 2 || q.size() > 4 || !parse_u64(q[0].text(), v) || v == 0 || v > 0xffffffffULL ||
            !parse_u64(q[1].text(), m) || (q.size() >= 3 && !proto::parse_seqset(q[2].text())))
          return bad(c.tag, "Invalid QRESYNC parameters.", out);
        resync.emplace(static_cast<uint32_t>(v), m);
        if (q.size() >= 3) known_uids = &q[2];
      } else {
        return bad(c.tag, "Unknown SELECT parameter.", out);
      }
    }
  }
  auto mb = open_mailbox(*name, *name == "INBOX");
  if (!mb) return no(c.tag, mb.error().message, out);
  if (auto st = (*mb)->sync(); !st.ok()) return no(c.tag, store_error_text(st), out);
  auto sel = std::make_unique<Selected>();
  sel->mailbox = *mb;
  sel->name = *name;
  sel->read_only = c.name == "EXAMINE";
  auto snap = sel->mailbox->snapshot();
  sel->reported = snap;
  sel->keywords = snap->keywords;
  sel->uids.reserve(snap->messages.size());
  for (const auto& m : snap->messages) sel->uids.push_back(m.uid);
  uint32_t mark = sel->read_only ? snap->uidnext : sel->mailbox->take_recent(snap->uidnext);
  for (const auto& m : snap->messages)
    if (m.uid >= mark) sel->recent.insert(m.uid);
  out += flags_response(*snap);
  if (sel->read_only) {
    // EXAMINE: PERMANENTFLAGS () since nothing can change (RFC 9051 6.3.3).
    size_t p = out.rfind("* OK [PERMANENTFLAGS");
    out.erase(p);
    out += "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n";
  }
  out += fmt::format("* {} EXISTS\r\n", snap->messages.size());
  if (!rev2_) out += fmt::format("* {} RECENT\r\n", sel->recent.size());
  auto first_unseen = std::find_if(snap->messages.begin(), snap->messages.end(),
                                   [](const auto& m) { return !(m.flags & md::kSeen); });
  if (first_unseen != snap->messages.end() && !rev2_)
    out += fmt::format("* OK [UNSEEN {}] First unseen.\r\n", first_unseen - snap->messages.begin() + 1);
  out += fmt::format("* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n",
                     snap->uidvalidity, snap->uidnext);
  if (condstore_) out += fmt::format("* OK [HIGHESTMODSEQ {}] Highest\r\n", snap->highest_modseq);
  selected_ = std::move(sel);
  if (resync && resync->first == snap->uidvalidity) {
    std::string vanished = vanished_since(resync->second, known_uids);
    if (!vanished.empty()) out += "* VANISHED (EARLIER) " + vanished + "\r\n";
    for (const auto& m : snap->messages) {
      if (m.modseq <= resync->second) continue;
      out += fmt::format("* {} FETCH (UID {} FLAGS {} MODSEQ ({}))\r\n", seq_of(m.uid), m.uid,
                         flags_list(m, *snap, selected_->recent.count(m.uid) > 0), m.modseq);
    }
  }
  if (wake_) selected_->watch = selected_->mailbox->watch(wake_);
  return ok(c.tag,
            fmt::format("[{}] {} completed", selected_->read_only ? "READ-ONLY" : "READ-WRITE",
                        c.name == "EXAMINE" ? "Examine" : "Select"),
            out);
}

Next Session::cmd_close(const Command& c, std::string& out) {
  if (!c.args.empty()) return bad(c.tag, "Too many arguments.", out);
  if (c.name == "CLOSE" && !selected_->read_only) {
    auto snap = selected_->mailbox->snapshot();
    std::vector<uint32_t> gone;
    for (const auto& m : snap->messages)
      if ((m.flags & md::kDeleted) && seq_of(m.uid)) gone.push_back(m.uid);
    if (!gone.empty())
      if (auto st = selected_->mailbox->expunge(gone); !st.ok()) return no(c.tag, store_error_text(st), out);
  }
  close_selected();
  return ok(c.tag, fmt::format("{} completed.", c.name == "CLOSE" ? "Close" : "Unselect"), out);
}

Next Session::cmd_create(const Command& c, std::string& out) {
  if (c.args.empty() || c.args.size() > 2) return bad(c.tag, "Invalid arguments.", out);
  auto name = mailbox_name(c.args[0]);
  if (!name) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
  std::string n = *name;
  while (!n.empty() && n.back() == settings_.separator) n.pop_back();  // "CREATE a/" creates a
  if (n == "INBOX") return no(c.tag, "[ALREADYEXISTS] Mailbox already exists", out);
  if (c.args.size() == 2) {
    // CREATE-SPECIAL-USE (RFC 6154): (USE (\Sent)); only the use its name already implies is accepted.
    const Token& p = c.args[1];
    if (!p.is_list() || p.items.size() != 2 || !iequals(p.items[0].text(), "USE") || !p.items[1].is_list())
      return bad(c.tag, "Invalid CREATE parameters.", out);
    for (const auto& use : p.items[1].items)
      if (!iequals(use.text(), special_use(n)))
        return no(c.tag, "[USEATTR] This special-use attribute goes only with its usual folder name.", out);
  }
  auto r = folders_->create(n);
  switch (r.error) {
    case md::FolderError::kNone:
      return ok(c.tag, "Create completed.", out);
    case md::FolderError::kExists:
      return no(c.tag, "[ALREADYEXISTS] Mailbox already exists", out);
    case md::FolderError::kInvalidName:
      return no(c.tag, "[CANNOT] Invalid mailbox name: " + r.detail, out);
    default:
      return no(c.tag, "[SERVERBUG] " + r.detail, out);
  }
}

Next Session::cmd_delete(const Command& c, std::string& out) {
  if (c.args.size() != 1) return bad(c.tag, "Invalid arguments.", out);
  auto name = mailbox_name(c.args[0]);
  if (!name) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
  if (*name == "INBOX") return no(c.tag, "[CANNOT] INBOX can't be deleted.", out);
  if (selected_ && selected_->name == *name) close_selected();
  auto r = folders_->remove(*name);
  switch (r.error) {
    case md::FolderError::kNone:
      return ok(c.tag, "Delete completed.", out);
    case md::FolderError::kNotFound:
      return no(c.tag, "[NONEXISTENT] Mailbox doesn't exist: " + *name, out);
    case md::FolderError::kInvalidName:
      return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
    case md::FolderError::kHasChildren:
      return no(c.tag, "[INUSE] Mailbox has children, delete them first", out);
    default:
      return no(c.tag, "[SERVERBUG] " + r.detail, out);
  }
}

Next Session::cmd_rename(const Command& c, std::string& out) {
  if (c.args.size() != 2) return bad(c.tag, "Invalid arguments.", out);
  auto from = mailbox_name(c.args[0]);
  auto to = mailbox_name(c.args[1]);
  if (!from || !to) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
  if (*to == "INBOX") return no(c.tag, "[ALREADYEXISTS] Target mailbox already exists", out);
  auto r = folders_->rename(*from, *to);
  switch (r.error) {
    case md::FolderError::kNone:
      return ok(c.tag, "Rename completed.", out);
    case md::FolderError::kNotFound:
      return no(c.tag, "[NONEXISTENT] Mailbox doesn't exist: " + *from, out);
    case md::FolderError::kExists:
      return no(c.tag, "[ALREADYEXISTS] Target mailbox already exists", out);
    case md::FolderError::kInvalidName:
      return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
    default:
      return no(c.tag, "[SERVERBUG] " + r.detail, out);
  }
}

Next Session::cmd_subscribe(const Command& c, std::string& out) {
  if (c.args.size() != 1) return bad(c.tag, "Invalid arguments.", out);
  auto name = mailbox_name(c.args[0]);
  if (!name) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
  bool on = c.name == "SUBSCRIBE";
  if (on && !folders_->exists(*name) && *name != "INBOX")
    return no(c.tag, "[NONEXISTENT] Mailbox doesn't exist: " + *name, out);
  auto r = folders_->subscribe(*name, on);
  if (!r.ok()) return no(c.tag, "[SERVERBUG] " + r.detail, out);
  return ok(c.tag, fmt::format("{} completed.", on ? "Subscribe" : "Unsubscribe"), out);
}

Next Session::cmd_namespace(const Command& c, std::string& out) {
  out += fmt::format("* NAMESPACE ((\"\" \"{}\")) NIL NIL\r\n", settings_.separator);
  return ok(c.tag, "Namespace completed.", out);
}

Next Session::cmd_list(const Command& c, std::string& out) {
  // LIST [(selection options)] reference pattern(s) [RETURN (options)] (RFC 5258, 5819, 6154).
  bool lsub = c.name == "LSUB";
  size_t i = 0;
  bool sel_subscribed = lsub, sel_special = false, sel_recursive = false;
  bool ret_subscribed = false, ret_children = true, ret_special = true;
  std::vector<std::string> status_items;
  if (!lsub && i < c.args.size() && c.args[i].is_list()) {
    for (const auto& o : c.args[i].items) {
      std::string opt = to_lower(o.text());
      if (opt == "subscribed") {
        sel_subscribed = ret_subscribed = true;
      } else if (opt == "special-use") {
        sel_special = true;
      } else if (opt == "recursivematch") {
        sel_recursive = true;
      } else if (opt != "remote") {
        return bad(c.tag, "Unknown LIST selection option.", out);
      }
    }
    if (sel_recursive && !sel_subscribed)
      return bad(c.tag, "RECURSIVEMATCH needs another selection option.", out);
    ++i;
  }
  if (c.args.size() < i + 2) return bad(c.tag, "Invalid LIST arguments.", out);
  if (!c.args[i].is_astring()) return bad(c.tag, "Invalid reference.", out);
  auto ref = mailbox_name(c.args[i]);
  std::vector<std::string> patterns;
  auto add_pattern = [&](const Token& t) {
    auto p = mailbox_name(t);
    if (p) patterns.push_back(*p);
    return p.has_value();
  };
  const Token& pat = c.args[i + 1];
  if (pat.is_list()) {
    for (const auto& p : pat.items)
      if (!add_pattern(p)) return bad(c.tag, "Invalid pattern.", out);
  } else if (!add_pattern(pat)) {
    return bad(c.tag, "Invalid pattern.", out);
  }
  i += 2;
  if (i < c.args.size()) {
    if (lsub || !iequals(c.args[i].text(), "RETURN") || i + 1 >= c.args.size() || !c.args[i + 1].is_list())
      return bad(c.tag, "Invalid LIST return options.", out);
    for (size_t k = 0; k < c.args[i + 1].items.size(); ++k) {
      const Token& o = c.args[i + 1].items[k];
      std::string opt = to_lower(o.text());
      if (opt == "subscribed") {
        ret_subscribed = true;
      } else if (opt == "children") {
        ret_children = true;
      } else if (opt == "special-use") {
        ret_special = true;
      } else if (opt == "status" && k + 1 < c.args[i + 1].items.size() &&
                 c.args[i + 1].items[k + 1].is_list()) {
        for (const auto& s : c.args[i + 1].items[++k].items) status_items.push_back(to_lower(s.text()));
      } else {
        return bad(c.tag, "Unknown LIST return option.", out);
      }
    }
    if (i + 2 != c.args.size()) return bad(c.tag, "Invalid LIST arguments.", out);
  }
  if (!ref) return no(c.tag, "[CANNOT] Invalid reference.", out);
  // LIST "" "": the hierarchy delimiter.
  if (patterns.size() == 1 && patterns[0].empty()) {
    out += fmt::format("* {} (\\Noselect) \"{}\" \"\"\r\n", lsub ? "LSUB" : "LIST", settings_.separator);
    return ok(c.tag, fmt::format("{} completed.", lsub ? "Lsub" : "List"), out);
  }
  auto listing = folders_->list();
  auto subs = folders_->subscriptions();
  auto subscribed = [&](const std::string& n) {
    return std::find(subs.begin(), subs.end(), n) != subs.end();
  };
  std::vector<std::string> all = listing.mailboxes;
  all.insert(all.end(), listing.nonexistent.begin(), listing.nonexistent.end());
  if (sel_subscribed)
    for (const auto& s : subs)
      if (std::find(all.begin(), all.end(), s) == all.end()) all.push_back(s);
  std::sort(all.begin() + 1, all.end());
  auto has_children = [&](const std::string& n) {
    std::string prefix = n + settings_.separator;
    return std::any_of(listing.mailboxes.begin(), listing.mailboxes.end(),
                       [&](const std::string& m) { return m.compare(0, prefix.size(), prefix) == 0; });
  };
  for (const auto& name : all) {
    bool matched = false;
    for (const auto& p : patterns) matched = matched || list_match(*ref + p, name, settings_.separator);
    if (!matched) continue;
    bool exists =
        std::find(listing.mailboxes.begin(), listing.mailboxes.end(), name) != listing.mailboxes.end();
    bool is_sub = subscribed(name);
    std::string use = special_use(name);
    if (sel_subscribed && !is_sub) continue;
    if (sel_special && use.empty()) continue;
    std::vector<std::string> attrs;
    if (!exists) attrs.push_back(lsub ? "\\Noselect" : "\\NonExistent");
    if (!lsub && ret_children) attrs.push_back(has_children(name) ? "\\HasChildren" : "\\HasNoChildren");
    if (!lsub && (ret_subscribed || sel_subscribed) && is_sub) attrs.push_back("\\Subscribed");
    if (!lsub && ret_special && !use.empty()) attrs.push_back(use);
    std::string line = fmt::format("* {} (", lsub ? "LSUB" : "LIST");
    for (size_t k = 0; k < attrs.size(); ++k) line += (k ? " " : "") + attrs[k];
    line += fmt::format(") \"{}\" {}\r\n", settings_.separator, wire_name(name));
    out += line;
    if (!status_items.empty() && exists) {
      auto mb = open_mailbox(name, false);
      if (mb && (*mb)->sync().ok()) {
        auto snap = (*mb)->snapshot();
        std::string items;
        for (const auto& it : status_items) {
          if (!items.empty()) items += ' ';
          if (it == "messages")
            items += fmt::format("MESSAGES {}", snap->messages.size());
          else if (it == "uidnext")
            items += fmt::format("UIDNEXT {}", snap->uidnext);
          else if (it == "uidvalidity")
            items += fmt::format("UIDVALIDITY {}", snap->uidvalidity);
          else if (it == "unseen")
            items += fmt::format("UNSEEN {}", count_unseen(*snap));
          else if (it == "recent")
            items += "RECENT 0";
          else if (it == "highestmodseq")
            items += fmt::format("HIGHESTMODSEQ {}", snap->highest_modseq);
          else
            items.pop_back();
        }
        out += fmt::format("* STATUS {} ({})\r\n", wire_name(name), items);
      }
    }
  }
  return ok(c.tag, fmt::format("{} completed.", lsub ? "Lsub" : "List"), out);
}

Next Session::cmd_status(const Command& c, std::string& out) {
  if (c.args.size() != 2 || !c.args[1].is_list() || c.args[1].items.empty())
    return bad(c.tag, "Invalid STATUS arguments.", out);
  auto name = mailbox_name(c.args[0]);
  if (!name) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
  auto mb = open_mailbox(*name, *name == "INBOX");
  if (!mb) return no(c.tag, mb.error().message, out);
  if (auto st = (*mb)->sync(); !st.ok()) return no(c.tag, store_error_text(st), out);
  const auto& asked = c.args[1].items;
  if (std::any_of(asked.begin(), asked.end(), [](const auto& t) { return iequals(t.text(), "size"); }))
    (*mb)->count_vsizes();
  auto snap = (*mb)->snapshot();
  std::string items;
  for (const auto& t : c.args[1].items) {
    std::string it = to_lower(t.text());
    if (!items.empty()) items += ' ';
    if (it == "messages") {
      items += fmt::format("MESSAGES {}", snap->messages.size());
    } else if (it == "recent") {
      uint32_t recent = 0;
      if (selected_ && selected_->mailbox == *mb) recent = static_cast<uint32_t>(selected_->recent.size());
      items += fmt::format("RECENT {}", recent);
    } else if (it == "uidnext") {
      items += fmt::format("UIDNEXT {}", snap->uidnext);
    } else if (it == "uidvalidity") {
      items += fmt::format("UIDVALIDITY {}", snap->uidvalidity);
    } else if (it == "unseen") {
      items += fmt::format("UNSEEN {}", count_unseen(*snap));
    } else if (it == "highestmodseq") {
      items += fmt::format("HIGHESTMODSEQ {}", snap->highest_modseq);
    } else if (it == "size") {
      uint64_t size = 0;
      for (const auto& m : snap->messages) size += md::rfc822_size(m);
      items += fmt::format("SIZE {}", size);
    } else if (it == "deleted") {
      items += fmt::format("DELETED {}", std::count_if(snap->messages.begin(), snap->messages.end(),
                                                       [](const auto& m) { return m.flags & md::kDeleted; }));
    } else {
      return bad(c.tag, "Invalid STATUS item.", out);
    }
  }
  out += fmt::format("* STATUS {} ({})\r\n", wire_name(*name), items);
  if (selected_) report_changes(out, false, false);
  return ok(c.tag, "Status completed.", out);
}

Next Session::cmd_append(const Command& c, std::string& out) {
  // APPEND mailbox [flags] [date-time] literal, repeated for MULTIAPPEND (RFC 3502).
  if (c.args.size() < 2) return bad(c.tag, "Invalid APPEND arguments.", out);
  auto name = mailbox_name(c.args[0]);
  if (!name) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
  struct Message {
    uint8_t flags = 0;
    std::vector<std::string> keywords;
    int64_t date = 0;
    const std::string* content = nullptr;
  };
  std::vector<Message> messages;
  for (size_t i = 1; i < c.args.size();) {
    Message m;
    if (c.args[i].is_list()) {
      for (const auto& f : c.args[i].items) {
        if (!f.is_atom()) return bad(c.tag, "Invalid flag.", out);
        std::string lf = to_lower(f.value);
        if (lf == "\\seen")
          m.flags |= md::kSeen;
        else if (lf == "\\answered")
          m.flags |= md::kAnswered;
        else if (lf == "\\flagged")
          m.flags |= md::kFlagged;
        else if (lf == "\\deleted")
          m.flags |= md::kDeleted;
        else if (lf == "\\draft")
          m.flags |= md::kDraft;
        else if (lf == "\\recent" || f.value[0] == '\\')
          return bad(c.tag, "Invalid system flag.", out);
        else
          m.keywords.push_back(f.value);
      }
      ++i;
    }
    if (i < c.args.size() && c.args[i].type == Token::Type::kString && i + 1 < c.args.size() &&
        c.args[i + 1].type == Token::Type::kString) {
      auto d = proto::parse_date_time(c.args[i].value);
      if (!d) return bad(c.tag, "Invalid date-time.", out);
      m.date = *d;
      ++i;
    }
    // RFC 6855 4: "UTF8 (~{n}...)", a message whose header may hold UTF-8, after ENABLE UTF8=ACCEPT only.
    if (i + 1 < c.args.size() && c.args[i].is_atom() && iequals(c.args[i].value, "UTF8")) {
      const Token& data = c.args[i + 1];
      if (!utf8_) return bad(c.tag, "APPEND UTF8 needs ENABLE UTF8=ACCEPT.", out);
      if (!data.is_list() || data.items.size() != 1 || !data.items[0].literal8)
        return bad(c.tag, "APPEND UTF8 takes one literal8 in parentheses.", out);
      m.content = &data.items[0].value;
      i += 2;
    } else if (i < c.args.size() && c.args[i].type == Token::Type::kString) {
      m.content = &c.args[i].value;
      ++i;
    } else {
      return bad(c.tag, "Missing message.", out);
    }
    if (m.content->empty()) return no(c.tag, "Can't save a zero byte message.", out);
    messages.push_back(std::move(m));
  }
  if (*name != "INBOX" && !folders_->exists(*name))
    return no(c.tag, "[TRYCREATE] Mailbox doesn't exist: " + *name, out);
  auto mb = open_mailbox(*name, *name == "INBOX");
  if (!mb) return no(c.tag, mb.error().message, out);
  std::vector<uint32_t> uids;
  for (const auto& m : messages) {
    uint32_t uid = 0;
    auto st = (*mb)->append(*m.content, m.flags, m.keywords, m.date, settings_.mailbox_size_limit, uid);
    if (!st.ok()) {
      log::warning("imap", "user={}: append to {}: {}", account_->user, *name, st.detail);
      if (!uids.empty()) (*mb)->expunge(uids);  // MULTIAPPEND is all or nothing
      return no(c.tag, store_error_text(st), out);
    }
    uids.push_back(uid);
  }
  auto snap = (*mb)->snapshot();
  if (selected_) {
    selected_->mailbox->sync();
    report_changes(out, true, false);
  }
  return ok(c.tag,
            fmt::format("[APPENDUID {} {}] Append completed.", snap->uidvalidity, proto::format_seqset(uids)),
            out);
}

Next Session::cmd_idle(const Command& c, std::string& out) {
  if (!c.args.empty()) return bad(c.tag, "IDLE takes no arguments.", out);
  idle_tag_ = c.tag;
  if (selected_) {
    selected_->mailbox->sync();
    report_changes(out, true, false);
  }
  out += "+ idling\r\n";
  return Next::kIdle;
}

void Session::idle_poll(std::string& out) {
  if (!selected_) return;
  selected_->mailbox->sync();
  report_changes(out, true, false);
}

Next Session::idle_line(std::string_view line, std::string& out) {
  std::string tag = std::move(idle_tag_);
  idle_tag_.clear();
  if (!iequals(line, "DONE")) return bad(tag, "Expected DONE.", out);
  if (selected_) idle_poll(out);
  return ok(tag, "Idle completed.", out);
}

Next Session::cmd_getquota(const Command& c, std::string& out) {
  if (c.args.size() != 1) return bad(c.tag, "Invalid arguments.", out);
  uint64_t used = md::usage(account_->maildir);
  std::string res = settings_.mailbox_size_limit
                        ? fmt::format("* QUOTA \"User quota\" (STORAGE {} {})\r\n", used / 1024,
                                      settings_.mailbox_size_limit / 1024)
                        : "* QUOTA \"User quota\" ()\r\n";
  if (c.name == "GETQUOTAROOT") {
    auto name = mailbox_name(c.args[0]);
    if (!name) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
    out += fmt::format("* QUOTAROOT {} \"User quota\"\r\n", wire_name(*name));
  } else if (c.args[0].text() != "User quota") {
    return no(c.tag, "[NONEXISTENT] Quota root doesn't exist.", out);
  }
  out += res;
  return ok(c.tag, fmt::format("{} completed.", c.name == "GETQUOTA" ? "Getquota" : "Getquotaroot"), out);
}

}  // namespace postern::imap::server

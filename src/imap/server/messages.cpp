// imap/server/messages.cpp: the commands on messages of the selected mailbox: FETCH (with BODY[]/BINARY
// sections, partial fetches, CONDSTORE CHANGEDSINCE), STORE (UNCHANGEDSINCE), COPY/MOVE (COPYUID), EXPUNGE
// and UID EXPUNGE. ENVELOPE and BODYSTRUCTURE come from the mailbox's cache when computed before.
#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "base/log.hpp"
#include "base/parallel.hpp"
#include "base/strings.hpp"
#include "imap/proto/message_view.hpp"
#include "imap/proto/writer.hpp"
#include "imap/server/selected.hpp"
#include "imap/server/session.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::imap::server {

using proto::Command;
using proto::Token;
namespace md = store::maildir;

std::optional<std::string> cached_header(md::Mailbox& mailbox, uint32_t uid, const std::string* content) {
  if (auto header = mailbox.cached(uid, md::CacheField::kHeader)) return header;
  std::optional<std::string> read;
  if (!content) {
    auto r = mailbox.read(uid);
    if (!r) return std::nullopt;
    read = std::move(*r);
    content = &*read;
  }
  std::string header = content->substr(0, proto::root_header_end(*content));
  mailbox.put_cache(uid, md::CacheField::kHeader, header);
  return header;
}

namespace {

struct FetchItem {
  enum class Kind {
    kUid,
    kFlags,
    kInternalDate,
    kSize,
    kEnvelope,
    kBody,
    kBodyStructure,
    kSection,
    kBinary,
    kBinarySize,
    kRfc822,
    kRfc822Header,
    kRfc822Text,
    kModseq,
    kSaveDate,
  };
  Kind kind;
  std::string name;  // as echoed in the response, e.g. BODY[HEADER.FIELDS (SUBJECT)]<0>
  proto::Section section;
  bool peek = false;
  bool partial = false;
  uint64_t offset = 0, length = 0;
};

// Parses one fetch attribute; `error` says why not.
std::optional<FetchItem> parse_fetch_item(std::string_view att, std::string& error) {
  using K = FetchItem::Kind;
  std::string up;
  size_t bracket = att.find('[');
  for (char c : att.substr(0, bracket)) up += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  static const std::map<std::string, K, std::less<>> simple = {{"UID", K::kUid},
                                                               {"FLAGS", K::kFlags},
                                                               {"INTERNALDATE", K::kInternalDate},
                                                               {"RFC822.SIZE", K::kSize},
                                                               {"ENVELOPE", K::kEnvelope},
                                                               {"BODY", K::kBody},
                                                               {"BODYSTRUCTURE", K::kBodyStructure},
                                                               {"RFC822", K::kRfc822},
                                                               {"RFC822.HEADER", K::kRfc822Header},
                                                               {"RFC822.TEXT", K::kRfc822Text},
                                                               {"MODSEQ", K::kModseq},
                                                               {"SAVEDATE", K::kSaveDate}};
  if (bracket == std::string_view::npos) {
    auto it = simple.find(up);
    if (it == simple.end()) {
      error = "Unknown FETCH attribute " + printable(att, 40);
      return std::nullopt;
    }
    return FetchItem{it->second, up, {}, false, false, 0, 0};
  }
  FetchItem item{K::kSection, "", {}, false, false, 0, 0};
  std::string base = up;
  if (base == "BODY.PEEK") {
    item.peek = true;
    base = "BODY";
  } else if (base == "BINARY.PEEK") {
    item.peek = true;
    base = "BINARY";
  }
  if (base == "BINARY")
    item.kind = K::kBinary;
  else if (base == "BINARY.SIZE")
    item.kind = K::kBinarySize;
  else if (base != "BODY") {
    error = "Unknown FETCH attribute " + printable(att, 40);
    return std::nullopt;
  }
  size_t close = att.rfind(']');
  std::string_view spec = att.substr(bracket + 1, close - bracket - 1);
  auto sec = proto::parse_section(spec);
  if (!sec || (item.kind != K::kSection && sec->kind != proto::Section::Kind::kAll)) {
    error = "Invalid section";
    return std::nullopt;
  }
  item.section = *sec;
  std::string_view rest = att.substr(close + 1);
  if (!rest.empty()) {
    // <offset.length>
    if (item.kind == K::kBinarySize || rest.size() < 5 || rest.front() != '<' || rest.back() != '>') {
      error = "Invalid partial";
      return std::nullopt;
    }
    auto nums = split(rest.substr(1, rest.size() - 2), '.');
    unsigned long long o = 0, l = 0;
    if (nums.size() != 2 || !parse_u64(nums[0], o) || !parse_u64(nums[1], l) || l == 0) {
      error = "Invalid partial";
      return std::nullopt;
    }
    item.partial = true;
    item.offset = o;
    item.length = l;
  }
  // The response names the section as requested, upper-cased, without PEEK and with only the offset.
  std::string spec_up;
  for (char c : spec) spec_up += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  if (item.section.kind == proto::Section::Kind::kHeaderFields ||
      item.section.kind == proto::Section::Kind::kHeaderFieldsNot)
    spec_up = std::string(spec.substr(0, spec.find('('))) + "(" + [&] {
      std::string f;
      for (size_t i = 0; i < item.section.fields.size(); ++i)
        f += (i ? " " : "") + to_lower(item.section.fields[i]);
      std::string u;
      for (char c : f) u += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
      return u;
    }() + ")";
  for (auto& ch : spec_up) ch = static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
  item.name = base + "[" + spec_up + "]";
  if (item.partial) item.name += fmt::format("<{}>", item.offset);
  return item;
}

// ENVELOPE, BODY, BODYSTRUCTURE and RFC822.SIZE of the messages one FETCH answers, a window of messages at a
// time: from the mailbox's cache (and index), else computed from the file and cached. A window's missing
// values (a cold cache: an index deleted, a Maildir filled by another program) are computed on every core,
// each message's file read and parsed once for all of them; and while the caller writes the responses of a
// window, the next one is computed on the other cores.
class Structures {
 public:
  using K = FetchItem::Kind;
  Structures(md::Mailbox& mailbox, const std::vector<uint32_t>& uids,
             const std::vector<const md::MessageMeta*>& metas, const std::vector<FetchItem>& items, bool utf8)
      : mailbox_(mailbox), uids_(uids), metas_(metas), utf8_(utf8) {
    for (const auto& i : items) {
      if (auto k = slot(i.kind)) wanted_[*k] = true;
      if (i.kind == K::kSize) sizes_ = true;
    }
  }
  ~Structures() {
    ahead_.reset();  // its threads write into it
    mailbox_.set_vsizes(counted_);
  }
  Structures(const Structures&) = delete;
  Structures& operator=(const Structures&) = delete;

  static std::optional<size_t> slot(K kind) {
    switch (kind) {
      case K::kEnvelope:
        return 0;
      case K::kBody:
        return 1;
      case K::kBodyStructure:
        return 2;
      default:
        return std::nullopt;
    }
  }

  // The value for uids[pos]: nullptr when its file could not be read (expunged meanwhile).
  const std::string* get(size_t pos, K kind) {
    auto& v = at(pos).values[*slot(kind)];
    return v ? &*v : nullptr;
  }

  uint64_t rfc822_size(size_t pos) {
    if (metas_[pos]->vsize != md::kUnknownVsize) return metas_[pos]->vsize;
    uint64_t counted = at(pos).vsize;
    return counted != md::kUnknownVsize ? counted : md::rfc822_size(*metas_[pos]);
  }

 private:
  static constexpr size_t kWindow = 512;
  static constexpr md::CacheField kFields[3] = {md::CacheField::kEnvelope, md::CacheField::kBody,
                                                md::CacheField::kBodyStructure};
  struct Values {
    std::array<std::optional<std::string>, 3> values;
    uint64_t vsize = md::kUnknownVsize;  // counted here
  };
  // The messages uids_[start, start + values.size()): what the cache had, and the rest (`todo`) as `job`
  // computes it.
  struct Window {
    size_t start = 0;
    std::vector<Values> values;
    std::vector<size_t> todo;
    std::unique_ptr<ParallelJob> job;  // last: its destructor waits for the threads that write `values`
  };

  Values& at(size_t pos) {
    if (!window_ || pos < window_->start || pos >= window_->start + window_->values.size()) load(pos);
    return window_->values[pos - window_->start];
  }

  // The window at `from`: the one computed ahead when it is that one, else one computed now; then the next
  // one is started.
  void load(size_t from) {
    if (ahead_ && ahead_->start == from) {
      window_ = std::move(ahead_);
    } else {
      ahead_.reset();
      window_ = start(from, cpu_threads() - 1);
    }
    window_->job->finish();  // the caller takes what the helpers have not
    record(*window_);
    size_t next = from + window_->values.size();
    if (next < uids_.size() && cpu_threads() > 1) ahead_ = start(next, cpu_threads() - 1);
  }

  // Looks up the window's values in the cache, and starts computing the missing ones on `helpers` threads.
  std::unique_ptr<Window> start(size_t from, size_t helpers) {
    auto w = std::make_unique<Window>();
    w->start = from;
    size_t n = std::min(kWindow, uids_.size() - from);
    std::vector<uint32_t> uids(uids_.begin() + from, uids_.begin() + from + n);
    w->values.assign(n, {});
    std::vector<bool> missing(n, false);
    for (size_t k = 0; k < n; ++k) missing[k] = sizes_ && metas_[from + k]->vsize == md::kUnknownVsize;
    for (size_t f = 0; f < 3; ++f) {
      if (!wanted_[f]) continue;
      if (utf8_) {  // 8-bit header text as sent after ENABLE UTF8=ACCEPT: never cached
        missing.assign(n, true);
        break;
      }
      auto cached = mailbox_.cached(uids, kFields[f]);
      for (size_t k = 0; k < n; ++k) {
        if (cached[k])
          w->values[k].values[f] = std::move(cached[k]);
        else
          missing[k] = true;
      }
    }
    for (size_t k = 0; k < n; ++k)
      if (missing[k]) w->todo.push_back(k);
    // A few: the caller computes them when it needs them (finish).
    if (w->todo.size() < 64) helpers = 0;
    Window* raw = w.get();
    w->job = std::make_unique<ParallelJob>(raw->todo.size(), helpers, [this, raw](size_t t) {
      size_t k = raw->todo[t];
      size_t pos = raw->start + k;
      compute(uids_[pos], metas_[pos]->vsize == md::kUnknownVsize, raw->values[k]);
    });
    return w;
  }

  // What a computed window found: cached, sizes kept for the end.
  void record(const Window& w) {
    for (size_t k : w.todo) {
      uint32_t uid = uids_[w.start + k];
      const Values& v = w.values[k];
      if (v.vsize != md::kUnknownVsize) counted_.emplace_back(uid, v.vsize);
      for (size_t f = 0; f < 3 && !utf8_; ++f)
        if (wanted_[f] && v.values[f]) mailbox_.put_cache(uid, kFields[f], *v.values[f]);
    }
  }

  // Runs on several threads at once: reads only the file and writes only `v` (the message's own).
  void compute(uint32_t uid, bool count, Values& v) const {
    auto msg = mailbox_.read(uid);
    if (!msg) {
      v.values = {};
      return;
    }
    if (count) v.vsize = md::crlf_size(*msg);
    for (size_t f = 0; f < 3; ++f) {
      if (!wanted_[f] || v.values[f]) continue;
      v.values[f] = f == 0 ? proto::envelope(*msg, utf8_) : proto::body_structure(*msg, f == 2, utf8_);
    }
  }

  md::Mailbox& mailbox_;
  const std::vector<uint32_t>& uids_;
  const std::vector<const md::MessageMeta*>& metas_;
  bool utf8_;
  std::array<bool, 3> wanted_{};
  bool sizes_ = false;
  std::unique_ptr<Window> window_;                      // the one being answered
  std::unique_ptr<Window> ahead_;                       // the next one, being computed
  std::vector<std::pair<uint32_t, uint64_t>> counted_;  // vsizes counted, recorded at the end (one publish)
};

std::string_view partial(std::string_view data, const FetchItem& i) {
  if (!i.partial) return data;
  if (i.offset >= data.size()) return {};
  return data.substr(i.offset, std::min<uint64_t>(i.length, data.size() - i.offset));
}

}  // namespace

bool Session::drain(std::string& out) {
  constexpr size_t kDrainAt = 256 * 1024;
  return !drain_ || out.size() < kDrainAt || drain_();
}

std::optional<std::vector<uint32_t>> Session::resolve(const Token& t, bool uid) {
  if (!t.is_atom()) return std::nullopt;
  auto set = proto::parse_seqset(t.value);
  if (!set) return std::nullopt;
  const auto& uids = selected_->uids;
  std::vector<uint32_t> out;
  if (set->saved) {
    for (uint32_t u : selected_->saved)
      if (seq_of(u)) out.push_back(u);
    return out;
  }
  if (uid) {
    uint32_t star = uids.empty() ? 0 : uids.back();
    for (auto [lo, hi] : set->ranges) {
      uint32_t a = lo == proto::kStar ? star : lo, b = hi == proto::kStar ? star : hi;
      if (a > b) std::swap(a, b);
      // A range above every UID still includes the last message when it ends in "*" ("100:*").
      if (uids.empty()) continue;
      auto from = std::lower_bound(uids.begin(), uids.end(), a);
      auto to = std::upper_bound(uids.begin(), uids.end(), b);
      out.insert(out.end(), from, to);
    }
  } else {
    uint32_t star = static_cast<uint32_t>(uids.size());
    for (auto [lo, hi] : set->ranges) {
      uint32_t a = lo == proto::kStar ? star : lo, b = hi == proto::kStar ? star : hi;
      if (a > b) std::swap(a, b);
      if (a == 0 || b > star) return std::nullopt;  // BAD: a message sequence number that doesn't exist
      for (uint32_t s = a; s <= b; ++s) out.push_back(uids[s - 1]);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Next Session::cmd_fetch(const Command& c, std::string& out) {
  using K = FetchItem::Kind;
  if (c.args.size() < 2) return bad(c.tag, "Invalid FETCH arguments.", out);
  auto uids = resolve(c.args[0], c.uid);
  if (!uids) return bad(c.tag, "Invalid messageset", out);
  std::vector<FetchItem> items;
  std::string error;
  auto add = [&](std::string_view att) {
    auto it = parse_fetch_item(att, error);
    if (it) items.push_back(std::move(*it));
    return it.has_value();
  };
  const Token& spec = c.args[1];
  if (spec.is_atom() &&
      (iequals(spec.value, "ALL") || iequals(spec.value, "FAST") || iequals(spec.value, "FULL"))) {
    add("FLAGS");
    add("INTERNALDATE");
    add("RFC822.SIZE");
    if (!iequals(spec.value, "FAST")) add("ENVELOPE");
    if (iequals(spec.value, "FULL")) add("BODY");
  } else if (spec.is_list()) {
    for (const auto& t : spec.items)
      if (!t.is_atom() || !add(t.value))
        return bad(c.tag, error.empty() ? "Invalid FETCH attribute" : error, out);
  } else if (!spec.is_atom() || !add(spec.value)) {
    return bad(c.tag, error.empty() ? "Invalid FETCH attribute" : error, out);
  }
  uint64_t changed_since = 0;
  bool vanished = false;
  if (c.args.size() > 2) {
    // (CHANGEDSINCE n [VANISHED]) (RFC 7162 3.1.4, 3.2.6)
    const Token& mods = c.args[2];
    if (c.args.size() != 3 || !mods.is_list()) return bad(c.tag, "Invalid FETCH modifiers.", out);
    for (size_t k = 0; k < mods.items.size(); ++k) {
      unsigned long long v = 0;
      if (iequals(mods.items[k].text(), "CHANGEDSINCE") && k + 1 < mods.items.size() &&
          parse_u64(mods.items[k + 1].text(), v)) {
        changed_since = v;
        ++k;
      } else if (iequals(mods.items[k].text(), "VANISHED") && c.uid && qresync_) {
        vanished = true;
      } else {
        return bad(c.tag, "Invalid FETCH modifiers.", out);
      }
    }
    if (!changed_since) return bad(c.tag, "FETCH modifiers need CHANGEDSINCE.", out);
    condstore_ = true;
    if (vanished) {
      std::string gone = vanished_since(changed_since, &c.args[0]);
      if (!gone.empty()) out += "* VANISHED (EARLIER) " + gone + "\r\n";
    }
  }
  bool want_uid = c.uid;
  bool want_modseq = changed_since > 0;
  bool sets_seen = false;
  for (const auto& i : items) {
    if (i.kind == K::kUid) want_uid = false;  // asked for explicitly: printed in its place
    if (i.kind == K::kModseq) want_modseq = false;
    if (!i.peek &&
        (i.kind == K::kSection || i.kind == K::kBinary || i.kind == K::kRfc822 || i.kind == K::kRfc822Text))
      sets_seen = true;
  }
  Selected& sel = *selected_;
  // Messages read for the first time get \Seen (not in EXAMINE); the FETCH then includes the new FLAGS.
  std::set<uint32_t> newly_seen;
  if (sets_seen && !sel.read_only) {
    auto snap = sel.mailbox->snapshot();
    std::vector<uint32_t> unseen;
    size_t next = 0;
    for (uint32_t u : *uids)
      if (const auto* m = snap->find(u, next); m && !(m->flags & md::kSeen)) unseen.push_back(u);
    if (!unseen.empty()) {
      if (auto st = sel.mailbox->store(unseen, md::FlagOp::kAdd, md::kSeen, {}, 0); st.ok())
        newly_seen.insert(unseen.begin(), unseen.end());
      for (uint32_t u : unseen) sel.silent.insert(u);
    }
  }
  if (std::any_of(items.begin(), items.end(), [](const FetchItem& i) { return i.kind == K::kInternalDate; }))
    sel.mailbox->stat_dates(*uids);
  auto snap = sel.mailbox->snapshot();
  bool ghost_seen = false;
  // The messages answered, with what this session knows of each: one expunged by someone else and not yet
  // reported is still answered from what this session last saw of it (as Dovecot does); only its content is
  // gone.
  std::vector<uint32_t> shown_uids;
  std::vector<const md::MessageMeta*> shown_metas;
  std::vector<const md::Snapshot*> shown_in;
  size_t next = 0;
  for (uint32_t uid : *uids) {
    const md::MessageMeta* m = snap->find(uid, next);
    const md::Snapshot* of = snap.get();
    if (!m) {
      m = sel.reported->find(uid);
      of = sel.reported.get();
    }
    if (!m) {
      ghost_seen = true;
      continue;
    }
    if (changed_since && m->modseq <= changed_since) continue;
    shown_uids.push_back(uid);
    shown_metas.push_back(m);
    shown_in.push_back(of);
  }
  Structures structures(*sel.mailbox, shown_uids, shown_metas, items, utf8_);
  for (size_t pos = 0; pos < shown_uids.size(); ++pos) {
    uint32_t uid = shown_uids[pos];
    const md::MessageMeta* m = shown_metas[pos];
    const md::Snapshot* of = shown_in[pos];
    std::optional<std::string> content;
    auto load = [&]() -> const std::string* {
      if (!content) {
        auto r = sel.mailbox->read(uid);
        if (!r) return nullptr;
        content = std::move(*r);
      }
      return &*content;
    };
    std::string line = fmt::format("* {} FETCH (", seq_of(uid));
    bool first = true;
    auto sep = [&] {
      if (!first) line += ' ';
      first = false;
    };
    if (want_uid) {
      sep();
      line += fmt::format("UID {}", uid);
    }
    bool failed = false;
    for (const auto& i : items) {
      sep();
      switch (i.kind) {
        case K::kUid:
          line += fmt::format("UID {}", uid);
          break;
        case K::kFlags:
          line += "FLAGS " + flags_list(*m, *of, sel.recent.count(uid) > 0);
          break;
        case K::kInternalDate:
          line += "INTERNALDATE \"" + proto::format_date_time(md::arrival_date(*m)) + "\"";
          break;
        case K::kSize:
          line += fmt::format("RFC822.SIZE {}", structures.rfc822_size(pos));
          break;
        case K::kModseq:
          line += fmt::format("MODSEQ ({})", m->modseq);
          break;
        case K::kSaveDate:
          line +=
              m->save_date ? "SAVEDATE \"" + proto::format_date_time(m->save_date) + "\"" : "SAVEDATE NIL";
          break;
        case K::kEnvelope:
        case K::kBody:
        case K::kBodyStructure: {
          const std::string* value = structures.get(pos, i.kind);
          if (!value) {
            failed = true;
            break;
          }
          line += i.name + " " + *value;
          break;
        }
        case K::kRfc822:
        case K::kRfc822Header:
        case K::kRfc822Text:
        case K::kSection: {
          using SK = proto::Section::Kind;
          proto::Section s = i.section;
          if (i.kind == K::kRfc822Header) s.kind = SK::kHeader;
          if (i.kind == K::kRfc822Text) s.kind = SK::kText;
          // The message's own header fields need only its header (header-only clients read no file).
          bool header_only = s.path.empty() && (s.kind == SK::kHeader || s.kind == SK::kHeaderFields ||
                                                s.kind == SK::kHeaderFieldsNot);
          std::optional<std::string> header;
          if (header_only) header = cached_header(*sel.mailbox, uid, content ? &*content : nullptr);
          const std::string* msg = header_only ? (header ? &*header : nullptr) : load();
          if (!msg) {
            failed = true;
            break;
          }
          // section_bytes already gives the data as sent: bare LF as CRLF.
          std::string data = proto::section_bytes(*msg, s);
          line += i.name + ' ';
          if (i.partial && i.offset >= data.size()) {
            line += "\"\"";
          } else {
            proto::append_literal(line, partial(data, i));
          }
          break;
        }
        case K::kBinary:
        case K::kBinarySize: {
          const std::string* msg = load();
          if (!msg) {
            failed = true;
            break;
          }
          auto data = proto::binary_bytes(*msg, i.section.path);
          if (!data) {
            out += fmt::format("{} NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.\r\n", c.tag);
            return Next::kCommand;
          }
          if (i.kind == K::kBinarySize) {
            line += fmt::format("{} {}", i.name, data->size());
          } else {
            line += i.name + " ";
            std::string_view d = partial(*data, i);
            if (d.find('\0') != std::string_view::npos)
              proto::append_literal8(line, d);
            else
              proto::append_literal(line, d);
          }
          break;
        }
      }
      if (failed) break;
    }
    if (failed) {
      ghost_seen = true;
      continue;
    }
    if (newly_seen.count(uid) &&
        std::none_of(items.begin(), items.end(), [](const auto& i) { return i.kind == K::kFlags; }))
      line += " FLAGS " + flags_list(*m, *of, sel.recent.count(uid) > 0);
    if (want_modseq) line += fmt::format(" MODSEQ ({})", m->modseq);
    out += line + ")\r\n";
    if (!drain(out)) return Next::kClose;
  }
  report_changes(out, c.uid, c.uid);
  if (ghost_seen && !c.uid) return no(c.tag, "Some messages were expunged meanwhile.", out);
  return ok(c.tag, "Fetch completed.", out);
}

Next Session::cmd_store(const Command& c, std::string& out) {
  // STORE set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] flags
  if (c.args.size() < 3) return bad(c.tag, "Invalid STORE arguments.", out);
  auto uids = resolve(c.args[0], c.uid);
  if (!uids) return bad(c.tag, "Invalid messageset", out);
  size_t i = 1;
  uint64_t unchanged_since = 0;
  bool unchanged_since_zero = false;  // UNCHANGEDSINCE 0: every message fails (RFC 7162 3.1.3)
  if (c.args[i].is_list()) {
    const Token& mods = c.args[i];
    unsigned long long v = 0;
    if (mods.items.size() != 2 || !iequals(mods.items[0].text(), "UNCHANGEDSINCE") ||
        !parse_u64(mods.items[1].text(), v))
      return bad(c.tag, "Invalid STORE modifiers.", out);
    unchanged_since = v;
    unchanged_since_zero = v == 0;
    condstore_ = true;
    ++i;
  }
  if (i + 1 >= c.args.size() || !c.args[i].is_atom()) return bad(c.tag, "Invalid STORE arguments.", out);
  std::string what = to_lower(c.args[i].value);
  bool silent = what.size() > 7 && what.substr(what.size() - 7) == ".silent";
  if (silent) what.resize(what.size() - 7);
  md::FlagOp op;
  if (what == "flags")
    op = md::FlagOp::kSet;
  else if (what == "+flags")
    op = md::FlagOp::kAdd;
  else if (what == "-flags")
    op = md::FlagOp::kRemove;
  else
    return bad(c.tag, "Invalid STORE item.", out);
  std::vector<Token> flag_tokens;
  if (i + 2 == c.args.size() && c.args[i + 1].is_list()) {
    flag_tokens = c.args[i + 1].items;
  } else {
    flag_tokens.assign(c.args.begin() + static_cast<long>(i) + 1, c.args.end());
  }
  uint8_t flags = 0;
  std::vector<std::string> keywords;
  for (const auto& f : flag_tokens) {
    if (!f.is_atom()) return bad(c.tag, "Invalid flag.", out);
    std::string lf = to_lower(f.value);
    if (lf == "\\seen")
      flags |= md::kSeen;
    else if (lf == "\\answered")
      flags |= md::kAnswered;
    else if (lf == "\\flagged")
      flags |= md::kFlagged;
    else if (lf == "\\deleted")
      flags |= md::kDeleted;
    else if (lf == "\\draft")
      flags |= md::kDraft;
    else if (lf == "\\recent")
      continue;
    else if (f.value[0] == '\\')
      return bad(c.tag, "Invalid system flag " + printable(f.value, 40), out);
    else
      keywords.push_back(f.value);
  }
  Selected& sel = *selected_;
  if (sel.read_only) return no(c.tag, "Mailbox is read-only.", out);
  std::vector<uint32_t> failed;
  if (unchanged_since_zero) {
    failed = *uids;
  } else {
    // UNCHANGEDSINCE is checked by the store under its lock.
    auto st = sel.mailbox->store(*uids, op, flags, keywords, unchanged_since, &failed);
    if (!st.ok()) return no(c.tag, store_error_text(st), out);
  }
  if (silent)
    for (uint32_t u : *uids)
      if (std::find(failed.begin(), failed.end(), u) == failed.end()) sel.silent.insert(u);
  // Non-silent: the changes are reported as FETCH FLAGS by report_changes below, like anyone else's.
  // A STORE that changed nothing still answers with the current flags (RFC 9051 6.4.6).
  auto before = sel.reported;
  report_changes(out, c.uid, c.uid);
  if (!silent) {
    auto snap = sel.mailbox->snapshot();
    for (uint32_t u : *uids) {
      const auto* m = snap->find(u);
      const auto* b = before->find(u);
      if (!m || !b || m->modseq > before->highest_modseq) continue;
      if (std::find(failed.begin(), failed.end(), u) != failed.end()) continue;
      out += fmt::format("* {} FETCH (", seq_of(u));
      if (c.uid) out += fmt::format("UID {} ", u);
      out += "FLAGS " + flags_list(*m, *snap, sel.recent.count(u) > 0);
      if (condstore_) out += fmt::format(" MODSEQ ({})", m->modseq);
      out += ")\r\n";
    }
  }
  if (!failed.empty()) {
    std::vector<uint32_t> numbers;
    for (uint32_t u : failed) numbers.push_back(c.uid ? u : seq_of(u));
    std::sort(numbers.begin(), numbers.end());
    return ok(c.tag, fmt::format("[MODIFIED {}] Conditional STORE failed", proto::format_seqset(numbers)),
              out);
  }
  return ok(c.tag, "Store completed.", out);
}

Next Session::cmd_copy(const Command& c, std::string& out) {
  if (c.args.size() != 2) return bad(c.tag, "Invalid arguments.", out);
  auto uids = resolve(c.args[0], c.uid);
  if (!uids) return bad(c.tag, "Invalid messageset", out);
  auto name = mailbox_name(c.args[1]);
  if (!name) return no(c.tag, "[CANNOT] Invalid mailbox name.", out);
  bool move = c.name == "MOVE";
  Selected& sel = *selected_;
  if (move && sel.read_only) return no(c.tag, "Mailbox is read-only.", out);
  if (*name != "INBOX" && !folders_->exists(*name))
    return no(c.tag, "[TRYCREATE] Mailbox doesn't exist: " + *name, out);
  auto dest = open_mailbox(*name, *name == "INBOX");
  if (!dest) return no(c.tag, dest.error().message, out);
  std::vector<uint32_t> copied, new_uids;
  if (!uids->empty()) {
    auto st = sel.mailbox->copy_to(*uids, **dest, copied, new_uids);
    if (!st.ok()) return no(c.tag, store_error_text(st), out);
  }
  std::string code;
  if (!copied.empty())
    code = fmt::format("[COPYUID {} {} {}] ", (*dest)->snapshot()->uidvalidity, proto::format_seqset(copied),
                       proto::format_seqset(new_uids));
  if (!move) {
    report_changes(out, c.uid, c.uid);
    return ok(c.tag, code + "Copy completed.", out);
  }
  if (!copied.empty()) {
    out += "* OK " + code + "Moved UIDs.\r\n";
    if (auto st = sel.mailbox->expunge(copied); !st.ok()) return no(c.tag, store_error_text(st), out);
  }
  report_changes(out, true, c.uid);
  return ok(c.tag, "Move completed.", out);
}

Next Session::cmd_expunge(const Command& c, std::string& out) {
  Selected& sel = *selected_;
  std::optional<std::vector<uint32_t>> limit;
  if (c.uid) {
    if (c.args.size() != 1) return bad(c.tag, "Invalid arguments.", out);
    limit = resolve(c.args[0], true);
    if (!limit) return bad(c.tag, "Invalid messageset", out);
  } else if (!c.args.empty()) {
    return bad(c.tag, "EXPUNGE takes no arguments.", out);
  }
  if (sel.read_only) return no(c.tag, "Mailbox is read-only.", out);
  auto snap = sel.mailbox->snapshot();
  std::vector<uint32_t> gone;
  for (const auto& m : snap->messages) {
    if (!(m.flags & md::kDeleted) || !seq_of(m.uid)) continue;
    if (limit && !std::binary_search(limit->begin(), limit->end(), m.uid)) continue;
    gone.push_back(m.uid);
  }
  if (!gone.empty())
    if (auto st = sel.mailbox->expunge(gone); !st.ok()) return no(c.tag, store_error_text(st), out);
  report_changes(out, true, c.uid);
  return ok(c.tag, "Expunge completed.", out);
}

}  // namespace postern::imap::server

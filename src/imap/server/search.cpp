// imap/server/search.cpp: SEARCH and UID SEARCH (RFC 9051 6.4.4) with CHARSET UTF-8 / US-ASCII, ESEARCH
// RETURN options (RFC 4731), SEARCHRES "$" (RFC 5182) and CONDSTORE's MODSEQ key. Text keys match
// case-insensitively against headers and text parts decoded to UTF-8 (mime/message.hpp).
// Security: the key tree's depth is bounded by the parser's nesting limit; message content is read once
// per message and only when a key needs it.
#include <algorithm>
#include <ctime>
#include <initializer_list>
#include <memory>

#include <fmt/format.h>

#include "base/parallel.hpp"
#include "base/strings.hpp"
#include "imap/proto/message_view.hpp"
#include "imap/server/selected.hpp"
#include "imap/server/session.hpp"
#include "mime/headers.hpp"
#include "mime/message.hpp"

namespace postern::imap::server {

using proto::Command;
using proto::Token;
namespace md = store::maildir;

namespace {

struct Key {
  enum class Op {
    kAll,
    kAnd,
    kOr,
    kNot,
    kFlag,
    kNoFlag,
    kKeyword,
    kNoKeyword,
    kNew,
    kOld,
    kRecent,
    kBefore,
    kOn,
    kSince,
    kSentBefore,
    kSentOn,
    kSentSince,
    kLarger,
    kSmaller,
    kSeqSet,
    kUidSet,
    kHeader,
    kBody,
    kText,
    kModseq,
    kSavedBefore,
    kSavedOn,
    kSavedSince,
  };
  Op op = Op::kAll;
  uint8_t flag = 0;
  std::string a, b;  // header name / folded needle / keyword
  int64_t n = 0;
  std::vector<uint32_t> set;  // resolved UIDs for kSeqSet / kUidSet
  std::vector<Key> kids;
};

// What a message's evaluation may need, loaded on first use.
struct Loaded {
  const md::MessageMeta* meta;
  std::optional<std::string> header;  // proto::root_header_end
  std::optional<std::string> content;
  std::optional<std::vector<mime::Field>> fields;
  std::optional<std::string> headers, body;
};

int64_t day_of(int64_t t) {
  return t >= 0 ? t / 86400 * 86400 : (t - 86399) / 86400 * 86400;
}

// The Date: header as seconds (midnight of its day in its own zone, as RFC 9051 wants for SENT*).
std::optional<int64_t> sent_day(std::string_view date) {
  // "[Day, ]DD Mon YYYY HH:MM:SS zone"
  size_t comma = date.find(',');
  if (comma != std::string_view::npos) date = date.substr(comma + 1);
  auto words = split_list(date, " \t");
  if (words.size() < 3) return std::nullopt;
  return proto::parse_date(words[0] + "-" + words[1] + "-" + words[2]);
}

}  // namespace

namespace {

class SearchParser {
 public:
  explicit SearchParser(const std::vector<Token>& toks) : toks_(toks) {}
  std::string error;

  bool parse_all(size_t from, Key& root) {
    root.op = Key::Op::kAnd;
    pos_ = from;
    while (pos_ < toks_.size()) {
      Key k;
      if (!parse_key(toks_, pos_, k, 0)) return false;
      root.kids.push_back(std::move(k));
    }
    if (root.kids.empty()) return fail("Missing search key");
    return true;
  }

  std::function<std::optional<std::vector<uint32_t>>(const Token&, bool)> resolve;

 private:
  bool fail(std::string e) {
    if (error.empty()) error = std::move(e);
    return false;
  }

  bool arg(const std::vector<Token>& t, size_t& i, std::string& out) {
    if (i >= t.size() || !t[i].is_astring()) return fail("Missing search argument");
    out = std::string(t[i++].text());
    return true;
  }

  bool date(const std::vector<Token>& t, size_t& i, int64_t& out) {
    std::string s;
    if (!arg(t, i, s)) return false;
    auto d = proto::parse_date(s);
    if (!d) return fail("Invalid search date");
    out = *d;
    return true;
  }

  bool number(const std::vector<Token>& t, size_t& i, int64_t& out) {
    std::string s;
    unsigned long long v = 0;
    if (!arg(t, i, s) || !parse_u64(s, v)) return fail("Invalid search number");
    out = static_cast<int64_t>(v);
    return true;
  }

  bool text(const std::vector<Token>& t, size_t& i, std::string& out) {
    if (!arg(t, i, out)) return false;
    if (!valid_utf8(out)) return fail("[BADCHARSET (US-ASCII UTF-8)] Invalid UTF-8 in search string");
    out = mime::fold_case(out);
    return true;
  }

  bool parse_key(const std::vector<Token>& t, size_t& i, Key& k, int depth) {
    using O = Key::Op;
    if (depth > proto::kMaxDepth) return fail("Too deep search");
    const Token& tok = t[i];
    if (tok.is_list()) {
      ++i;
      k.op = O::kAnd;
      size_t j = 0;
      if (tok.items.empty()) return fail("Empty search list");
      while (j < tok.items.size()) {
        Key kid;
        if (!parse_key(tok.items, j, kid, depth + 1)) return false;
        k.kids.push_back(std::move(kid));
      }
      return true;
    }
    if (!tok.is_atom()) return fail("Invalid search key");
    std::string w = to_lower(tok.value);
    ++i;
    static const std::map<std::string, std::pair<O, uint8_t>, std::less<>> flags = {
        {"answered", {O::kFlag, md::kAnswered}},   {"deleted", {O::kFlag, md::kDeleted}},
        {"draft", {O::kFlag, md::kDraft}},         {"flagged", {O::kFlag, md::kFlagged}},
        {"seen", {O::kFlag, md::kSeen}},           {"unanswered", {O::kNoFlag, md::kAnswered}},
        {"undeleted", {O::kNoFlag, md::kDeleted}}, {"undraft", {O::kNoFlag, md::kDraft}},
        {"unflagged", {O::kNoFlag, md::kFlagged}}, {"unseen", {O::kNoFlag, md::kSeen}}};
    if (auto f = flags.find(w); f != flags.end()) {
      k.op = f->second.first;
      k.flag = f->second.second;
      return true;
    }
    static const std::map<std::string, O, std::less<>> dates = {
        {"before", O::kBefore},           {"on", O::kOn},           {"since", O::kSince},
        {"sentbefore", O::kSentBefore},   {"senton", O::kSentOn},   {"sentsince", O::kSentSince},
        {"savedbefore", O::kSavedBefore}, {"savedon", O::kSavedOn}, {"savedsince", O::kSavedSince}};
    if (auto d = dates.find(w); d != dates.end()) {
      k.op = d->second;
      return date(t, i, k.n);
    }
    static const std::map<std::string, std::string, std::less<>> headers = {
        {"from", "from"}, {"to", "to"}, {"cc", "cc"}, {"bcc", "bcc"}, {"subject", "subject"}};
    if (auto h = headers.find(w); h != headers.end()) {
      k.op = O::kHeader;
      k.a = h->second;
      return text(t, i, k.b);
    }
    if (w == "all") return (k.op = O::kAll, true);
    if (w == "new") return (k.op = O::kNew, true);
    if (w == "old") return (k.op = O::kOld, true);
    if (w == "recent") return (k.op = O::kRecent, true);
    if (w == "keyword" || w == "unkeyword") {
      k.op = w == "keyword" ? O::kKeyword : O::kNoKeyword;
      return arg(t, i, k.a);
    }
    if (w == "larger" || w == "smaller") {
      k.op = w == "larger" ? O::kLarger : O::kSmaller;
      return number(t, i, k.n);
    }
    if (w == "header") {
      k.op = O::kHeader;
      if (!arg(t, i, k.a)) return false;
      k.a = to_lower(k.a);
      return text(t, i, k.b);
    }
    if (w == "body" || w == "text") {
      k.op = w == "body" ? O::kBody : O::kText;
      return text(t, i, k.b);
    }
    if (w == "not") {
      k.op = O::kNot;
      if (i >= t.size()) return fail("Missing search key after NOT");
      k.kids.emplace_back();
      return parse_key(t, i, k.kids.back(), depth + 1);
    }
    if (w == "or") {
      k.op = O::kOr;
      for (int n = 0; n < 2; ++n) {
        if (i >= t.size()) return fail("Missing search key after OR");
        k.kids.emplace_back();
        if (!parse_key(t, i, k.kids.back(), depth + 1)) return false;
      }
      return true;
    }
    if (w == "uid") {
      k.op = O::kUidSet;
      if (i >= t.size()) return fail("Missing UID set");
      auto s = resolve(t[i++], true);
      if (!s) return fail("Invalid UID set");
      k.set = std::move(*s);
      return true;
    }
    if (w == "modseq") {
      // MODSEQ [entry-name entry-type] n
      k.op = O::kModseq;
      if (i + 2 < t.size() && t[i].type == Token::Type::kString) i += 2;
      return number(t, i, k.n);
    }
    // A sequence set.
    k.op = O::kSeqSet;
    auto s = resolve(tok, false);
    if (!s) return fail("Unknown search key " + printable(tok.value, 40));
    k.set = std::move(*s);
    return true;
  }

  const std::vector<Token>& toks_;
  size_t pos_ = 0;
};

// Whether the key, or one inside it, is one of `ops`.
bool uses(const Key& k, std::initializer_list<Key::Op> ops) {
  if (std::find(ops.begin(), ops.end(), k.op) != ops.end()) return true;
  return std::any_of(k.kids.begin(), k.kids.end(), [&](const Key& kid) { return uses(kid, ops); });
}

bool eval(const Key& k, Loaded& l, md::Mailbox& mb, const md::Snapshot& snap,
          const std::set<uint32_t>& recent) {
  using O = Key::Op;
  const md::MessageMeta& m = *l.meta;
  auto content = [&]() -> const std::string& {
    if (!l.content) {
      auto r = mb.read(m.uid);
      l.content = r ? std::move(*r) : std::string();
    }
    return *l.content;
  };
  auto header = [&]() -> std::string_view {
    if (!l.header) l.header = cached_header(mb, m.uid, l.content ? &*l.content : nullptr);
    return l.header ? *l.header : std::string_view();
  };
  auto fields = [&]() -> const std::vector<mime::Field>& {
    if (!l.fields) l.fields = mime::parse_header(header());
    return *l.fields;
  };
  auto keyword_bit = [&](const std::string& name) -> int {
    for (size_t i = 0; i < snap.keywords.size(); ++i)
      if (iequals(snap.keywords[i], name)) return static_cast<int>(i);
    return -1;
  };
  switch (k.op) {
    case O::kAll:
      return true;
    case O::kAnd:
      return std::all_of(k.kids.begin(), k.kids.end(),
                         [&](const Key& c) { return eval(c, l, mb, snap, recent); });
    case O::kOr:
      return eval(k.kids[0], l, mb, snap, recent) || eval(k.kids[1], l, mb, snap, recent);
    case O::kNot:
      return !eval(k.kids[0], l, mb, snap, recent);
    case O::kFlag:
      return (m.flags & k.flag) != 0;
    case O::kNoFlag:
      return (m.flags & k.flag) == 0;
    case O::kKeyword: {
      int bit = keyword_bit(k.a);
      return bit >= 0 && (m.keywords & (1u << bit));
    }
    case O::kNoKeyword: {
      int bit = keyword_bit(k.a);
      return bit < 0 || !(m.keywords & (1u << bit));
    }
    case O::kNew:
      return recent.count(m.uid) && !(m.flags & md::kSeen);
    case O::kOld:
      return !recent.count(m.uid);
    case O::kRecent:
      return recent.count(m.uid) > 0;
    case O::kBefore:
      return day_of(md::arrival_date(m)) < k.n;
    case O::kOn:
      return day_of(md::arrival_date(m)) == k.n;
    case O::kSince:
      return day_of(md::arrival_date(m)) >= k.n;
    case O::kSavedBefore:
      return m.save_date && day_of(m.save_date) < k.n;
    case O::kSavedOn:
      return m.save_date && day_of(m.save_date) == k.n;
    case O::kSavedSince:
      return m.save_date && day_of(m.save_date) >= k.n;
    case O::kSentBefore:
    case O::kSentOn:
    case O::kSentSince: {
      auto date = mime::find_field(fields(), "date");
      auto d = date ? sent_day(*date) : std::nullopt;
      if (!d) return false;
      return k.op == O::kSentBefore ? *d < k.n : k.op == O::kSentOn ? *d == k.n : *d >= k.n;
    }
    case O::kLarger:
      return static_cast<int64_t>(md::rfc822_size(m)) > k.n;
    case O::kSmaller:
      return static_cast<int64_t>(md::rfc822_size(m)) < k.n;
    case O::kSeqSet:
    case O::kUidSet:
      return std::binary_search(k.set.begin(), k.set.end(), m.uid);
    case O::kModseq:
      return static_cast<int64_t>(m.modseq) >= k.n;
    case O::kHeader: {
      // One field wanted: only that one is parsed (unless all were already).
      std::optional<std::vector<mime::Field>> own;
      if (!l.fields) own = mime::parse_header(header(), nullptr, k.a);
      for (const auto& f : own ? *own : *l.fields) {
        if (!iequals(f.name, k.a)) continue;
        if (k.b.empty()) return true;
        if (mime::fold_case(mime::decode_header_value(f.value)).find(k.b) != std::string::npos) return true;
      }
      return false;
    }
    case O::kBody:
    case O::kText: {
      if (k.op == O::kText) {
        if (!l.headers) l.headers = mime::searchable_headers(content());
        if (l.headers->find(k.b) != std::string::npos) return true;
      }
      if (!l.body) l.body = mime::searchable_body(content());
      return l.body->find(k.b) != std::string::npos;
    }
  }
  return false;
}

}  // namespace

std::optional<Next> Session::match(const Command& c, size_t first, std::vector<uint32_t>& found,
                                   Matched& info, std::string& out) {
  const auto& a = c.args;
  size_t i = first;
  if (i < a.size() && a[i].is_atom() && iequals(a[i].value, "CHARSET")) {
    if (i + 1 >= a.size() || !a[i + 1].is_astring()) return bad(c.tag, "Missing CHARSET.", out);
    i += 2;
    std::string cs = to_lower(a[i - 1].text());
    if (cs != "utf-8" && cs != "us-ascii")
      return no(c.tag, "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset", out);
  }
  return match_keys(c, i, found, info, out);
}

std::optional<Next> Session::match_keys(const Command& c, size_t first, std::vector<uint32_t>& found,
                                        Matched& info, std::string& out) {
  Key root;
  SearchParser parser(c.args);
  parser.resolve = [this](const Token& t, bool uid) { return resolve(t, uid); };
  if (!parser.parse_all(first, root)) {
    if (istarts_with(parser.error, "[BADCHARSET")) return no(c.tag, parser.error, out);
    return bad(c.tag, parser.error, out);
  }
  Selected& sel = *selected_;
  using O = Key::Op;
  if (uses(root, {O::kLarger, O::kSmaller})) sel.mailbox->count_vsizes(sel.uids);
  if (uses(root, {O::kBefore, O::kOn, O::kSince})) sel.mailbox->stat_dates(sel.uids);
  auto snap = sel.mailbox->snapshot();
  const size_t n = sel.uids.size();
  std::vector<const md::MessageMeta*> metas(n);
  size_t next = 0;
  for (size_t i = 0; i < n; ++i) metas[i] = snap->find(sel.uids[i], next);
  std::vector<char> hits(n, 0);
  auto test = [&](size_t i, std::optional<std::string> header) {
    if (!metas[i]) return;
    Loaded l{metas[i], std::move(header), {}, {}, {}, {}};
    hits[i] = eval(root, l, *sel.mailbox, *snap, sel.recent);
  };
  // Header keys: the cached headers of a batch of messages are fetched together (not for TEXT or BODY, which
  // read the whole message anyway).
  constexpr size_t kBatch = 1000;
  if (uses(root, {O::kHeader, O::kSentBefore, O::kSentOn, O::kSentSince})) {
    std::vector<std::optional<std::string>> batch;
    for (size_t i = 0; i < n; ++i) {
      if (i % kBatch == 0) {
        std::vector<uint32_t> uids(sel.uids.begin() + i, sel.uids.begin() + std::min(i + kBatch, n));
        batch = sel.mailbox->cached(uids, md::CacheField::kHeader);
      }
      test(i, std::move(batch[i % kBatch]));
    }
  } else if (uses(root, {O::kText, O::kBody})) {
    // Every file is read and decoded: on every core.
    parallel_for(n, 64, cpu_threads(), [&](size_t i) { test(i, std::nullopt); });
  } else {
    for (size_t i = 0; i < n; ++i) test(i, std::nullopt);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!hits[i]) continue;
    found.push_back(sel.uids[i]);
    info.max_modseq = std::max(info.max_modseq, metas[i]->modseq);
  }
  info.has_modseq_key =
      std::any_of(root.kids.begin(), root.kids.end(), [](const Key& k) { return k.op == Key::Op::kModseq; });
  return std::nullopt;
}

Next Session::cmd_search(const Command& c, std::string& out) {
  size_t i = 0;
  const auto& a = c.args;
  // RETURN (options) (ESEARCH / SEARCHRES).
  bool esearch = rev2_;  // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 6.4.4)
  std::set<std::string> ret;
  if (i < a.size() && a[i].is_atom() && iequals(a[i].value, "RETURN")) {
    if (i + 1 >= a.size() || !a[i + 1].is_list()) return bad(c.tag, "Invalid RETURN options.", out);
    esearch = true;
    for (const auto& o : a[i + 1].items) {
      std::string opt = to_lower(o.text());
      if (opt != "min" && opt != "max" && opt != "all" && opt != "count" && opt != "save")
        return bad(c.tag, "Unknown RETURN option.", out);
      ret.insert(opt);
    }
    i += 2;
  }
  if (ret.empty()) ret.insert("all");
  std::vector<uint32_t> found;  // UIDs, ascending
  Matched info;
  if (auto answered = match(c, i, found, info, out)) return *answered;
  Selected& sel = *selected_;
  auto number = [&](uint32_t uid) { return c.uid ? uid : seq_of(uid); };
  if (ret.count("save")) sel.saved = found;
  if (!esearch) {
    std::string line = "* SEARCH";
    for (uint32_t u : found) {
      fmt::format_int n(number(u));
      line += ' ';
      line.append(n.data(), n.size());
    }
    if (info.has_modseq_key && !found.empty()) line += fmt::format(" (MODSEQ {})", info.max_modseq);
    out += line + "\r\n";
  } else if (!(ret.size() == 1 && ret.count("save"))) {
    std::string line = fmt::format("* ESEARCH (TAG \"{}\")", c.tag);
    if (c.uid) line += " UID";
    if (!found.empty()) {
      if (ret.count("min")) line += fmt::format(" MIN {}", number(found.front()));
      if (ret.count("max")) line += fmt::format(" MAX {}", number(found.back()));
      if (ret.count("all")) {
        std::vector<uint32_t> nums;
        for (uint32_t u : found) nums.push_back(number(u));
        line += " ALL " + proto::format_seqset(nums);
      }
    }
    if (ret.count("count")) line += fmt::format(" COUNT {}", found.size());
    if (info.has_modseq_key && !found.empty()) line += fmt::format(" MODSEQ {}", info.max_modseq);
    out += line + "\r\n";
  }
  report_changes(out, c.uid, c.uid);
  return ok(c.tag, "Search completed.", out);
}

}  // namespace postern::imap::server

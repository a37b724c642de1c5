// imap/server/sort.cpp: SORT and THREAD (RFC 5256): sort criteria ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO
// and SORT=DISPLAY's DISPLAYFROM and DISPLAYTO (RFC 5957) with REVERSE, ties broken by sequence number;
// THREAD=ORDEREDSUBJECT and THREAD=REFERENCES. Base subjects as RFC 5256 2.1 extracts them; dates from the
// Date: header (the internal date when there is none). Security: message headers are untrusted:
// Message-ID/References graphs may have loops and duplicates; the REFERENCES algorithm never links a message
// to its own descendant, and recursion on the thread tree is bounded by an explicit stack.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>

#include "base/strings.hpp"
#include "imap/server/selected.hpp"
#include "imap/server/session.hpp"
#include "mime/headers.hpp"
#include "mime/message.hpp"

namespace postern::imap::server {

using proto::Command;
using proto::Token;
namespace md = store::maildir;

namespace {

// What sorting and threading need of one message.
struct SortData {
  uint32_t uid = 0, seq = 0;
  int64_t arrival = 0, date = 0;
  uint64_t size = 0;
  std::string subject;                   // base subject, case-folded
  std::string from, to, cc;              // first address's local part, case-folded
  std::string display_from, display_to;  // RFC 5957: its display name, else its address; case-folded
  std::string message_id;
  std::vector<std::string> references;  // References, else In-Reply-To's first id
};

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

// RFC 5256 2.1: the base subject.
std::string base_subject(std::string_view raw) {
  std::string s;
  for (char c : mime::decode_header_value(raw)) {
    char d = (c == '\t' || c == '\r' || c == '\n') ? ' ' : c;
    if (d == ' ' && (s.empty() || s.back() == ' ')) continue;
    s += d;
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  auto strip_blob = [](std::string_view& v) {
    // subj-blob = "[" *BLOBCHAR "]" *WSP
    if (v.empty() || v[0] != '[') return false;
    size_t close = v.find_first_of("[]", 1);
    if (close == std::string_view::npos || v[close] != ']') return false;
    v.remove_prefix(close + 1);
    while (!v.empty() && is_wsp(v[0])) v.remove_prefix(1);
    return true;
  };
  while (true) {
    bool changed = false;
    // (2) trailers: "(fwd)" and white space.
    while (true) {
      if (!s.empty() && s.back() == ' ') {
        s.pop_back();
      } else if (s.size() >= 5 && iequals(std::string_view(s).substr(s.size() - 5), "(fwd)")) {
        s.resize(s.size() - 5);
      } else {
        break;
      }
    }
    std::string_view v = s;
    // (3)/(4) leaders: subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":", and subj-blob.
    while (true) {
      std::string_view before = v;
      while (!v.empty() && is_wsp(v[0])) v.remove_prefix(1);
      std::string_view w = v;
      size_t n = 0;
      if (istarts_with(w, "re"))
        n = 2;
      else if (istarts_with(w, "fwd"))
        n = 3;
      else if (istarts_with(w, "fw"))
        n = 2;
      if (n) {
        std::string_view t = w.substr(n);
        while (!t.empty() && is_wsp(t[0])) t.remove_prefix(1);
        std::string_view blob = t;
        if (strip_blob(blob)) t = blob;
        if (!t.empty() && t[0] == ':') {
          v = t.substr(1);
          continue;
        }
      }
      std::string_view rest = v;
      if (strip_blob(rest) && !rest.empty()) {
        v = rest;
        continue;
      }
      if (v == before) break;
    }
    if (v.size() != s.size()) {
      s = std::string(v);
      changed = true;
    }
    // (5) "[fwd:" ... "]"
    if (s.size() >= 6 && istarts_with(s, "[fwd:") && s.back() == ']') {
      s = std::string(trim(std::string_view(s).substr(5, s.size() - 6)));
      changed = true;
    }
    if (!changed) break;
  }
  return mime::fold_case(s);
}

std::string first_mailbox(const std::vector<mime::Field>& fields, std::string_view name) {
  auto v = mime::find_field(fields, name);
  if (!v) return {};
  auto addrs = mime::parse_address_list(*v);
  if (addrs.empty()) return {};
  return mime::fold_case(addrs[0].substr(0, addrs[0].rfind('@')));
}

// RFC 5957 3: the decoded display name of the first mailbox, else its addr-spec.
std::string first_display(const std::vector<mime::Field>& fields, std::string_view name) {
  auto v = mime::find_field(fields, name);
  if (!v) return {};
  for (const auto& a : mime::parse_addresses(*v)) {
    if (!a.mailbox || !a.domain) continue;  // a group's start or end
    std::string display = a.name ? std::string(trim(mime::decode_header_value(*a.name))) : std::string();
    return mime::fold_case(display.empty() ? *a.mailbox + "@" + *a.domain : display);
  }
  return {};
}

std::vector<std::string> message_ids(std::string_view v) {
  std::vector<std::string> ids;
  size_t pos = 0;
  while ((pos = v.find('<', pos)) != std::string_view::npos) {
    size_t end = v.find('>', pos);
    if (end == std::string_view::npos) break;
    std::string id(v.substr(pos + 1, end - pos - 1));
    if (!id.empty() && id.find_first_of(" \t<") == std::string::npos) ids.push_back(std::move(id));
    pos = end + 1;
  }
  return ids;
}

// The thread tree of THREAD responses.
struct Node {
  const SortData* msg = nullptr;  // null: a dummy (an id referenced but not present)
  Node* parent = nullptr;
  std::vector<Node*> children;
  int64_t sort_date() const {
    if (msg) return msg->date;
    int64_t d = INT64_MAX;
    for (auto* c : children) d = std::min(d, c->sort_date());
    return d;
  }
};

void render(const Node* n, std::string& out, bool uid) {
  // A chain of single children is written flat: (a b c); siblings each in parentheses: (a (b)(c)).
  // Iterative over the chain; recursion only at branch points, whose depth is bounded by the tree.
  const Node* cur = n;
  bool first = true;
  while (cur) {
    if (cur->msg) {
      if (!first) out += ' ';
      out += fmt::format("{}", uid ? cur->msg->uid : cur->msg->seq);
      first = false;
    }
    if (cur->children.size() == 1) {
      cur = cur->children[0];
      continue;
    }
    if (!cur->children.empty()) {
      if (!first) out += ' ';
      for (const Node* c : cur->children) {
        out += '(';
        render(c, out, uid);
        out += ')';
      }
    }
    break;
  }
}

bool is_ancestor(const Node* maybe_ancestor, const Node* n) {
  for (int guard = 0; n && guard < 100000; n = n->parent, ++guard)
    if (n == maybe_ancestor) return true;
  return false;
}

}  // namespace

// Reads what SORT/THREAD need of the messages `uids`.
static std::vector<SortData> sort_data(md::Mailbox& mb, const std::vector<uint32_t>& uids,
                                       const std::function<uint32_t(uint32_t)>& seq_of) {
  mb.stat_dates(uids);
  auto snap = mb.snapshot();
  std::vector<SortData> out;
  out.reserve(uids.size());
  std::vector<std::pair<uint32_t, uint64_t>> counted;  // vsizes not known before, counted in the files read
  size_t next = 0;
  for (uint32_t uid : uids) {
    const auto* m = snap->find(uid, next);
    if (!m) continue;
    SortData d;
    d.uid = uid;
    d.seq = seq_of(uid);
    d.arrival = md::arrival_date(*m);
    auto content = mb.read(uid);
    d.size = md::rfc822_size(*m);
    if (m->vsize == md::kUnknownVsize && content) {
      d.size = md::crlf_size(*content);
      counted.emplace_back(uid, d.size);
    }
    std::vector<mime::Field> fields = content ? mime::parse_header(*content) : std::vector<mime::Field>{};
    auto date = mime::find_field(fields, "date");
    auto parsed = date ? mime::parse_date(*date) : std::nullopt;
    d.date = parsed ? *parsed : d.arrival;
    d.subject = base_subject(mime::find_field(fields, "subject").value_or(""));
    d.from = first_mailbox(fields, "from");
    d.to = first_mailbox(fields, "to");
    d.cc = first_mailbox(fields, "cc");
    d.display_from = first_display(fields, "from");
    d.display_to = first_display(fields, "to");
    auto ids = message_ids(mime::find_field(fields, "message-id").value_or(""));
    if (!ids.empty()) d.message_id = ids[0];
    d.references = message_ids(mime::find_field(fields, "references").value_or(""));
    if (d.references.empty()) {
      auto irt = message_ids(mime::find_field(fields, "in-reply-to").value_or(""));
      if (!irt.empty()) d.references.push_back(irt[0]);
    }
    out.push_back(std::move(d));
  }
  mb.set_vsizes(counted);
  return out;
}

Next Session::cmd_sort(const Command& c, std::string& out) {
  // SORT (criteria) charset search-keys
  if (c.args.size() < 3 || !c.args[0].is_list() || c.args[0].items.empty())
    return bad(c.tag, "Invalid SORT arguments.", out);
  using Less = std::function<int(const SortData&, const SortData&)>;
  std::vector<std::pair<Less, bool>> criteria;
  bool reverse = false;
  for (const auto& t : c.args[0].items) {
    std::string k = to_lower(t.text());
    if (k == "reverse") {
      reverse = true;
      continue;
    }
    auto cmp = [](auto a, auto b) { return a < b ? -1 : b < a ? 1 : 0; };
    Less f;
    if (k == "arrival")
      f = [cmp](const SortData& a, const SortData& b) { return cmp(a.arrival, b.arrival); };
    else if (k == "date")
      f = [cmp](const SortData& a, const SortData& b) { return cmp(a.date, b.date); };
    else if (k == "size")
      f = [cmp](const SortData& a, const SortData& b) { return cmp(a.size, b.size); };
    else if (k == "subject")
      f = [](const SortData& a, const SortData& b) { return a.subject.compare(b.subject); };
    else if (k == "from")
      f = [](const SortData& a, const SortData& b) { return a.from.compare(b.from); };
    else if (k == "to")
      f = [](const SortData& a, const SortData& b) { return a.to.compare(b.to); };
    else if (k == "cc")
      f = [](const SortData& a, const SortData& b) { return a.cc.compare(b.cc); };
    else if (k == "displayfrom")
      f = [](const SortData& a, const SortData& b) { return a.display_from.compare(b.display_from); };
    else if (k == "displayto")
      f = [](const SortData& a, const SortData& b) { return a.display_to.compare(b.display_to); };
    else
      return bad(c.tag, "Unknown sort criterion " + printable(t.text(), 30), out);
    criteria.emplace_back(std::move(f), reverse);
    reverse = false;
  }
  if (reverse) return bad(c.tag, "REVERSE without a criterion.", out);
  if (!c.args[1].is_astring()) return bad(c.tag, "Missing charset.", out);
  std::string cs = to_lower(c.args[1].text());
  if (cs != "utf-8" && cs != "us-ascii")
    return no(c.tag, "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset", out);
  std::vector<uint32_t> found;
  Matched info;
  if (auto answered = match_keys(c, 2, found, info, out)) return *answered;
  Selected& sel = *selected_;
  auto data = sort_data(*sel.mailbox, found, [this](uint32_t u) { return seq_of(u); });
  std::stable_sort(data.begin(), data.end(), [&](const SortData& a, const SortData& b) {
    for (const auto& [f, rev] : criteria) {
      int r = f(a, b);
      if (r != 0) return rev ? r > 0 : r < 0;
    }
    return a.seq < b.seq;
  });
  std::string line = "* SORT";
  for (const auto& d : data) line += fmt::format(" {}", c.uid ? d.uid : d.seq);
  out += line + "\r\n";
  report_changes(out, c.uid, c.uid);
  return ok(c.tag, "Sort completed.", out);
}

Next Session::cmd_thread(const Command& c, std::string& out) {
  // THREAD algorithm charset search-keys
  if (c.args.size() < 3 || !c.args[0].is_atom() || !c.args[1].is_astring())
    return bad(c.tag, "Invalid THREAD arguments.", out);
  std::string algo = to_lower(c.args[0].value);
  if (algo != "orderedsubject" && algo != "references") return bad(c.tag, "Unknown thread algorithm.", out);
  std::string cs = to_lower(c.args[1].text());
  if (cs != "utf-8" && cs != "us-ascii")
    return no(c.tag, "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset", out);
  std::vector<uint32_t> found;
  Matched info;
  if (auto answered = match_keys(c, 2, found, info, out)) return *answered;
  Selected& sel = *selected_;
  auto data = sort_data(*sel.mailbox, found, [this](uint32_t u) { return seq_of(u); });
  std::vector<std::unique_ptr<Node>> nodes;
  auto make = [&](const SortData* m) {
    nodes.push_back(std::make_unique<Node>());
    nodes.back()->msg = m;
    return nodes.back().get();
  };
  auto by_date = [](const Node* a, const Node* b) {
    int64_t da = a->sort_date(), db = b->sort_date();
    if (da != db) return da < db;
    uint32_t sa = a->msg ? a->msg->seq : 0, sb = b->msg ? b->msg->seq : 0;
    return sa < sb;
  };
  std::vector<Node*> roots;
  if (algo == "orderedsubject") {
    std::vector<const SortData*> order;
    for (const auto& d : data) order.push_back(&d);
    std::stable_sort(order.begin(), order.end(), [](const SortData* a, const SortData* b) {
      int r = a->subject.compare(b->subject);
      if (r != 0) return r < 0;
      if (a->date != b->date) return a->date < b->date;
      return a->seq < b->seq;
    });
    for (size_t i = 0; i < order.size();) {
      Node* root = make(order[i]);
      size_t j = i + 1;
      for (; j < order.size() && order[j]->subject == order[i]->subject; ++j) {
        Node* child = make(order[j]);
        child->parent = root;
        root->children.push_back(child);
      }
      roots.push_back(root);
      i = j;
    }
  } else {
    // REFERENCES (RFC 5256 3): link messages by Message-ID / References, then prune dummies and group roots
    // by base subject.
    std::unordered_map<std::string, Node*> by_id;
    auto container = [&](const std::string& id) {
      auto it = by_id.find(id);
      if (it != by_id.end()) return it->second;
      Node* n = make(nullptr);
      by_id.emplace(id, n);
      return n;
    };
    auto link = [](Node* parent, Node* child) {
      if (child->parent || parent == child || is_ancestor(child, parent)) return;
      child->parent = parent;
      parent->children.push_back(child);
    };
    for (const auto& d : data) {
      Node* self = nullptr;
      if (!d.message_id.empty()) {
        auto it = by_id.find(d.message_id);
        if (it != by_id.end() && !it->second->msg) {
          self = it->second;
          self->msg = &d;
        }
      }
      if (!self) {
        self = make(&d);
        if (!d.message_id.empty() && !by_id.count(d.message_id)) by_id.emplace(d.message_id, self);
      }
      Node* prev = nullptr;
      for (const auto& ref : d.references) {
        Node* n = container(ref);
        if (prev) link(prev, n);
        prev = n;
      }
      if (prev && prev != self && !is_ancestor(self, prev)) {
        if (self->parent) {
          auto& sib = self->parent->children;
          sib.erase(std::remove(sib.begin(), sib.end(), self), sib.end());
          self->parent = nullptr;
        }
        link(prev, self);
      }
    }
    for (auto& n : nodes)
      if (!n->parent) roots.push_back(n.get());
    // Prune dummies: a dummy with no children goes; a dummy's children move up (at the root only when it
    // has a single child).
    std::function<void(Node*)> prune = [&](Node* n) {
      std::vector<Node*> kids;
      for (Node* ch : n->children) {
        prune(ch);
        if (!ch->msg) {
          for (Node* g : ch->children) {
            g->parent = n;
            kids.push_back(g);
          }
        } else {
          kids.push_back(ch);
        }
      }
      n->children = std::move(kids);
    };
    std::vector<Node*> pruned;
    for (Node* r : roots) {
      prune(r);
      if (!r->msg && r->children.empty()) continue;
      if (!r->msg && r->children.size() == 1) {
        r->children[0]->parent = nullptr;
        pruned.push_back(r->children[0]);
      } else {
        pruned.push_back(r);
      }
    }
    roots = std::move(pruned);
    // Group roots by base subject (RFC 5256 3, step 5).
    std::map<std::string, Node*> by_subject;
    auto subject_of = [](Node* n) {
      return n->msg                                        ? n->msg->subject
             : !n->children.empty() && n->children[0]->msg ? n->children[0]->msg->subject
                                                           : std::string();
    };
    std::vector<Node*> grouped;
    for (Node* r : roots) {
      std::string subj = subject_of(r);
      if (subj.empty()) {
        grouped.push_back(r);
        continue;
      }
      auto it = by_subject.find(subj);
      if (it == by_subject.end()) {
        by_subject.emplace(subj, r);
        grouped.push_back(r);
        continue;
      }
      Node* other = it->second;
      // Join: make the later one a child of the earlier (dummy roots collect both).
      Node* keep = other;
      if (!keep->msg) {
        keep->children.push_back(r);
        r->parent = keep;
      } else {
        Node* dummy = make(nullptr);
        for (auto& g : grouped)
          if (g == keep) g = dummy;
        it->second = dummy;
        keep->parent = dummy;
        r->parent = dummy;
        dummy->children = {keep, r};
      }
    }
    roots = std::move(grouped);
  }
  // Sort children and roots by date (dummies by their earliest child).
  std::vector<Node*> stack(roots.begin(), roots.end());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    std::stable_sort(n->children.begin(), n->children.end(), by_date);
    stack.insert(stack.end(), n->children.begin(), n->children.end());
  }
  std::stable_sort(roots.begin(), roots.end(), by_date);
  std::string line = "* THREAD ";
  for (Node* r : roots) {
    line += '(';
    render(r, line, c.uid);
    line += ')';
  }
  if (roots.empty()) line.pop_back();
  out += line + "\r\n";
  report_changes(out, c.uid, c.uid);
  return ok(c.tag, "Thread completed.", out);
}

}  // namespace postern::imap::server

// mime/message.cpp: the MIME structure parser and decoders. The structure follows what Dovecot 2.3's
// message parser sees, byte for byte (tests/data/mime holds messages with Dovecot's answers): header
// lines end at LF (a CR before it is part of the line end), a line that begins with SP or TAB continues
// the field before it; a boundary line is "--" followed by a boundary of an enclosing multipart (a prefix
// match, the longest one, newest first), "--b--" closes; the [CR]LF before a boundary line belongs to the
// boundary. Part counts and nesting are bounded (Limits): a multipart or message/rfc822 part that would
// nest too deep becomes an opaque application/octet-stream leaf, and once the message has max_parts parts
// no further boundary line is recognised.

#include "mime/message.hpp"

#include <iconv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "base/strings.hpp"

namespace postern::mime {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr size_t kMaxBoundary = 80;                        // longer boundaries are truncated (Dovecot)
constexpr size_t kLongLine = 8190;  // header lines this long are read in pieces by Dovecot (see split_header)

// RFC 5322 atext (1), alphanumerics (2), and atext that MIME calls tspecials (4): '/', '=', '?'.
constexpr unsigned char kAtext[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 4,  // !"#$%&'()*+,-./
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 4, 0, 4,  // 0-9 :;<=>?
    0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  // @A-O
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 1, 1,  // P-Z [\]^_
    1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  // `a-o
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0,  // p-z {|}~
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  //
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  //
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  //
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  //
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  //
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  //
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  //
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  //
};
bool is_atext(char c) {
  return kAtext[static_cast<unsigned char>(c)] != 0;
}
bool is_token_char(char c) {  // MIME token: atext except tspecials, plus '.'
  return (kAtext[static_cast<unsigned char>(c)] & 3) != 0 || c == '.';
}
bool is_lwsp(char c) {
  return c == ' ' || c == '\t';
}
// Up to the first NUL: Dovecot compares header names as C strings.
std::string_view c_prefix(std::string_view s) {
  return s.substr(0, s.find('\0'));
}

// RFC 822 tokenizer with Dovecot's leniency. The parse functions return 1 when more input follows the
// value (white space and comments after it are skipped), 0 at the end of the input, -1 on bad input.
struct Lexer {
  const char* p;
  const char* end;
  std::string* last_comment = nullptr;  // the text of the last comment skipped, when wanted
  bool replace_nul = false;             // NUL in quoted strings / comments / literals becomes U+FFFD

  explicit Lexer(std::string_view s) : p(s.data()), end(s.data() + s.size()) {}

  bool at_end() const { return p >= end; }
  char cur() const { return *p; }
  int more() const { return p < end ? 1 : 0; }

  int skip_comment() {
    int level = 1;
    if (last_comment) last_comment->clear();
    const char* start = ++p;
    for (; p < end; ++p) {
      switch (*p) {
        case '\0':
          if (last_comment && replace_nul) {
            last_comment->append(start, p);
            *last_comment += kReplacement;
            start = p + 1;
          }
          break;
        case '(':
          ++level;
          break;
        case ')':
          if (--level == 0) {
            if (last_comment) last_comment->append(start, p);
            ++p;
            return more();
          }
          break;
        case '\n':
          if (!last_comment) break;
          {
            const char* e = p;
            if (e > start && e[-1] == '\r') --e;
            last_comment->append(start, e);
            start = p + 1;
          }
          break;
        case '\\':
          ++p;
          if (p >= end) return -1;
          if (*p == '\r' || *p == '\n' || *p == '\0') {
            --p;
            break;
          }
          if (last_comment) last_comment->append(start, p - 1);
          start = p;
          break;
        default:
          break;
      }
    }
    return -1;
  }

  int skip_lwsp() {
    while (p < end) {
      char c = *p;
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++p;
        continue;
      }
      if (c != '(') break;
      if (skip_comment() < 0) return -1;
    }
    return more();
  }

  int atom(std::string& out) {
    if (p >= end || !is_atext(*p)) return -1;
    const char* start = p++;
    while (p < end && is_atext(*p)) ++p;
    out.append(start, p);
    return p < end ? skip_lwsp() : 0;
  }

  int dot_atom(std::string& out) {
    if (p >= end || !is_atext(*p)) return -1;
    const char* start = p++;
    for (;;) {
      while (p < end && is_atext(*p)) ++p;
      if (p >= end) break;
      if (start == p) return -1;
      out.append(start, p);
      int ret = skip_lwsp();
      if (ret <= 0) return ret;
      if (*p != '.') return 1;
      ++p;
      out += '.';
      if (skip_lwsp() <= 0) return -1;
      start = p;
    }
    out.append(start, p);
    return 0;
  }

  int mime_token(std::string& out) {
    const char* start = p;
    while (p < end && is_token_char(*p)) ++p;
    out.append(start, p);
    return p < end ? skip_lwsp() : 0;
  }

  int quoted_string(std::string& out) {
    ++p;  // the opening quote
    const char* start = p;
    for (; p < end; ++p) {
      switch (*p) {
        case '\0':
          if (replace_nul) {
            out.append(start, p);
            out += kReplacement;
            start = p + 1;
          }
          break;
        case '"':
          out.append(start, p);
          ++p;
          return skip_lwsp();
        case '\n': {
          const char* e = p;
          if (e > start && e[-1] == '\r') --e;
          out.append(start, e);
          start = p + 1;
          break;
        }
        case '\\':
          ++p;
          if (p >= end) return -1;
          if (*p == '\r' || *p == '\n' || *p == '\0') {
            --p;
            break;
          }
          out.append(start, p - 1);
          start = p;
          break;
        default:
          break;
      }
    }
    return -1;
  }

  int atom_or_dot(std::string& out) {
    const char* start = p;
    while (p < end && (is_atext(*p) || *p == '.')) ++p;
    out.append(start, p);
    return p < end ? skip_lwsp() : 0;
  }

  int phrase(std::string& out) {
    if (p >= end) return 0;
    if (*p == '.') return -1;
    for (;;) {
      int ret = *p == '"' ? quoted_string(out) : atom_or_dot(out);
      if (ret <= 0) return ret;
      if (!is_atext(*p) && *p != '"' && *p != '.') break;
      out += ' ';
    }
    return skip_lwsp();
  }

  int domain_literal(std::string& out) {
    const char* start = p++;
    for (; p < end; ++p) {
      switch (*p) {
        case '\0':
          if (replace_nul) {
            out.append(start, p);
            out += kReplacement;
            start = p + 1;
          }
          break;
        case '[':
          return -1;
        case ']':
          out.append(start, p + 1);
          ++p;
          return skip_lwsp();
        case '\n': {
          const char* e = p;
          if (e > start && e[-1] == '\r') --e;
          out.append(start, e);
          start = p + 1;
          break;
        }
        case '\\':
          ++p;
          if (p >= end) return -1;
          if (*p == '\r' || *p == '\n' || *p == '\0') {
            out.append(start, p);
            start = p;
            --p;
          }
          break;
        default:
          break;
      }
    }
    return -1;
  }

  int domain(std::string& out) {  // at '@'
    ++p;
    if (skip_lwsp() <= 0) return -1;
    if (*p == '[') return domain_literal(out);
    return dot_atom(out);
  }

  // "type/subtype" into `out`; -1 when broken (then `out` holds what Dovecot keeps: the type alone when
  // there is no '/', nothing when the subtype is missing or followed by something other than ';').
  int content_type(std::string& out) {
    out.clear();
    if (skip_lwsp() <= 0) return -1;
    if (mime_token(out) <= 0 || out.empty()) return -1;
    if (*p != '/') {
      out.clear();
      return -1;
    }
    ++p;
    if (skip_lwsp() <= 0) {
      out.clear();
      return -1;
    }
    out += '/';
    size_t mark = out.size();
    int ret = mime_token(out);
    if (ret < 0 || out.size() == mark || (p < end && *p != ';')) {
      out.clear();
      return -1;
    }
    return ret;
  }

  // One "; key=value" parameter: 1 found, 0 at the end, -1 broken.
  int content_param(std::string& key, std::string& value) {
    key.clear();
    value.clear();
    if (p >= end) return 0;
    if (*p != ';') return -1;
    ++p;
    if (skip_lwsp() <= 0) return -1;
    if (mime_token(key) <= 0) return -1;
    if (*p != '=') return -1;
    ++p;
    int ret = skip_lwsp();
    if (ret <= 0) {
      // no value
    } else if (*p == '"') {
      ret = quoted_string(value);
    } else if (*p == '=') {  // broken input such as name==?utf-8?b?...?=
      while (p < end && *p != ';' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') value += *p++;
    } else {
      ret = mime_token(value);
    }
    return ret < 0 ? -1 : 1;
  }
};

// The parameters after a Content-Type / Content-Disposition value, as Dovecot's RFC 2231 parser returns
// them: plain parameters in order, then the "name*N[*]" ones sorted and joined.
std::vector<std::pair<std::string, std::string>> parse_params(Lexer& lx) {
  struct Continued {
    std::string key, value;
    unsigned idx;
    bool extended;
  };
  std::vector<std::pair<std::string, std::string>> result;
  std::vector<Continued> continued;
  bool saved_replace = lx.replace_nul;
  lx.replace_nul = true;
  std::string key, value;
  unsigned idx = 0;  // as in Dovecot, "name*" keeps the index of the "name*N" before it
  bool extended = false;
  // Dovecot reads at most 128 parameters, broken ones (each byte skipped to the next ';') included.
  for (int n = 0; n < 128; ++n) {
    int ret = lx.content_param(key, value);
    if (ret == 0) break;
    if (ret < 0) {
      if (lx.at_end()) break;
      ++lx.p;
      continue;
    }
    size_t star = key.find('*');
    bool is_2231 = false;
    if (star != std::string::npos) {
      size_t i = star;
      if (i + 1 < key.size()) {
        ++i;
        idx = 0;
        while (i < key.size() && key[i] >= '0' && key[i] <= '9') {
          idx = idx * 10 + static_cast<unsigned>(key[i] - '0');
          ++i;
        }
      }
      if (i < key.size() && key[i] == '*') {
        extended = true;
        ++i;
      } else {
        extended = false;
      }
      if (i == key.size()) {
        is_2231 = true;
        continued.push_back({key.substr(0, star), value, idx, extended});
      }
    }
    if (!is_2231) result.emplace_back(key, value);
  }
  lx.replace_nul = saved_replace;
  if (continued.empty()) return result;

  std::stable_sort(continued.begin(), continued.end(), [](const Continued& a, const Continued& b) {
    int c = a.key.compare(b.key);
    if (c != 0) return c < 0;
    return a.idx < b.idx;
  });
  for (size_t i = 0, next = 0; i < continued.size(); i = next) {
    bool ok = true, have_extended = false;
    unsigned next_idx = 0;
    size_t j = i;
    for (; j < continued.size(); ++j) {
      if (!iequals(continued[i].key, continued[j].key)) break;
      if (continued[j].idx != next_idx) ok = false;
      if (continued[j].extended) have_extended = true;
      ++next_idx;
    }
    next = j;
    if (!ok) {
      for (j = i; j < next; ++j) {
        std::string k = continued[j].key + "*" + std::to_string(continued[j].idx);
        if (continued[j].extended) k += '*';
        result.emplace_back(std::move(k), continued[j].value);
      }
      continue;
    }
    std::string joined;
    if (!continued[i].extended && have_extended) joined += "''";
    for (j = i; j < next; ++j) {
      if (!continued[j].extended && have_extended) {
        for (char c : continued[j].value) {
          if (c == '%')
            joined += "%25";
          else
            joined += c;
        }
      } else {
        joined += continued[j].value;
      }
    }
    std::string k = continued[i].key;
    if (have_extended) k += '*';
    result.emplace_back(std::move(k), std::move(joined));
  }
  return result;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "charset'language'percent-encoded" (RFC 2231) into UTF-8.
std::string decode_2231(std::string_view v) {
  size_t q1 = v.find('\'');
  if (q1 == std::string_view::npos) return std::string(v);
  size_t q2 = v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return std::string(v);
  std::string charset(v.substr(0, q1));
  std::string raw;
  for (size_t i = q2 + 1; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && hex_value(v[i + 1]) >= 0 && hex_value(v[i + 2]) >= 0) {
      raw += static_cast<char>(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2]));
      i += 2;
    } else {
      raw += v[i];
    }
  }
  return to_utf8(raw, charset.empty() ? "us-ascii" : charset);
}

// ---- Addresses (Dovecot's message_address_parse with FILL_MISSING) ----

struct AddressParser {
  Lexer lx;
  std::string comment;
  std::string str;
  Address addr;
  bool invalid = false;
  std::vector<Address> out;

  explicit AddressParser(std::string_view v) : lx(v) {
    lx.last_comment = &comment;
    lx.replace_nul = true;
  }

  void add() {
    out.push_back(std::move(addr));
    addr = Address{};
    invalid = false;
  }

  int nonstrict_dot_atom(std::string& s) {
    int ret = -1;
    do {
      while (*lx.p == '.') {
        s += '.';
        ++lx.p;
        if (lx.at_end()) return 0;
        ret = 1;
      }
      if (*lx.p == '@') break;
      ret = lx.atom(s);
    } while (ret > 0 && *lx.p == '.');
    return ret;
  }

  int local_part() {
    str.clear();
    int ret = *lx.p == '"' ? lx.quoted_string(str) : nonstrict_dot_atom(str);
    if (ret < 0) return -1;
    addr.mailbox = str;
    return ret;
  }

  int domain() {
    str.clear();
    int ret = lx.domain(str);
    if (ret < 0) return -1;
    addr.domain = str;
    return ret;
  }

  int domain_list() {
    str.clear();
    for (;;) {
      if (lx.at_end()) return 0;
      if (*lx.p != '@') break;
      if (!str.empty()) str += ',';
      str += '@';
      int ret = lx.domain(str);
      if (ret <= 0) return ret;
      while (lx.skip_lwsp() > 0 && *lx.p == ',') ++lx.p;
    }
    addr.route = str;
    return 1;
  }

  int angle_addr() {
    ++lx.p;  // '<'
    if (lx.skip_lwsp() <= 0) return -1;
    if (*lx.p == '@') {
      if (domain_list() > 0 && *lx.p == ':') {
        ++lx.p;
      } else {
        addr.route = "INVALID_ROUTE";
        if (lx.at_end()) return -1;
      }
      if (lx.skip_lwsp() <= 0) return -1;
    }
    if (*lx.p != '>') {
      if (local_part() <= 0) return -1;
      if (*lx.p == '@' && domain() <= 0) return -1;
    }
    if (*lx.p != '>') return -1;
    ++lx.p;
    return lx.skip_lwsp();
  }

  int name_addr() {
    str.clear();
    if (lx.phrase(str) <= 0 || *lx.p != '<') return -1;
    addr.name = str;
    if (str.empty()) addr.name.reset();
    if (angle_addr() < 0) {
      addr.domain = "SYNTAX_ERROR";
      invalid = true;
    }
    return lx.more();
  }

  int addr_spec() {
    int ret2 = -2;
    comment.clear();
    bool quoted = *lx.p == '"';
    int ret = local_part();
    if (ret <= 0) invalid = true;
    if (ret != 0 && !lx.at_end() && *lx.p == '@') {
      ret2 = domain();
      if (ret2 <= 0) ret = ret2;
    }
    if (!comment.empty()) {
      addr.name = comment;
    } else if (ret2 == -2) {
      str += ' ';
      size_t len = str.size();
      (void)lx.phrase(str);
      if (str.size() != len) {
        addr.mailbox.reset();
        addr.name = str;
      } else if (!quoted) {
        addr.domain = "";
      }
      invalid = true;
      ret = -1;
    }
    return ret;
  }

  void add_fixed() {
    if (!addr.mailbox) addr.mailbox = "MISSING_MAILBOX";
    if (!addr.domain || addr.domain->empty()) addr.domain = "MISSING_DOMAIN";
    add();
  }

  int mailbox() {
    const char* start = lx.p;
    int ret = name_addr();
    if (ret < 0) {
      lx.p = start;
      addr = Address{};
      ret = addr_spec();
      if (invalid && !addr.name && addr.mailbox && !addr.domain) {  // a lone "word": a display name
        addr.name = std::move(addr.mailbox);
        addr.mailbox.reset();
      }
    }
    add_fixed();
    return ret;
  }

  int group() {
    str.clear();
    if (lx.phrase(str) <= 0 || *lx.p != ':') return -1;
    ++lx.p;
    int ret = lx.skip_lwsp();
    addr.mailbox = str;
    add();  // group start
    if (ret > 0 && *lx.p != ';') {
      for (;;) {
        (void)mailbox();  // a broken mailbox: go on anyway
        if (lx.at_end() || *lx.p != ',') break;
        ++lx.p;
        if (lx.skip_lwsp() <= 0) {
          ret = -1;
          break;
        }
      }
    }
    if (ret >= 0) {
      if (lx.at_end() || *lx.p != ';') {
        ret = -1;
      } else {
        ++lx.p;
        ret = lx.skip_lwsp();
      }
    }
    add();  // group end
    return ret == 0 ? 0 : 1;
  }

  int address() {
    const char* start = lx.p;
    int ret = group();
    if (ret < 0) {
      lx.p = start;
      addr = Address{};
      ret = mailbox();
    }
    return ret;
  }

  void list() {
    if (lx.skip_lwsp() <= 0) return;
    for (;;) {
      if (address() == 0) break;
      if (lx.at_end() || *lx.p != ',') break;
      ++lx.p;
      int ret = lx.skip_lwsp();
      if (ret <= 0) {
        if (ret < 0) add_fixed();  // ends with garbage
        break;
      }
    }
  }
};

// ---- The structure parser ----

struct Node {
  size_t pos = 0, hdr = 0, body = 0;
  uint64_t hdr_lines = 0, lines = 0;
  int parent = -1;
  int depth = 0;
  bool is_mime = false, multipart = false, digest = false, rfc822 = false, overflow = false;
  std::string type = "text", subtype = "plain", encoding = "7bit";
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<int> children;
};

struct BoundaryEntry {
  int part;
  std::string text;
};

uint64_t count_lf(std::string_view s, size_t a, size_t b) {
  return postern::count_lf(s.substr(a, b - a));
}

class StructureParser {
 public:
  StructureParser(std::string_view msg, const Limits& limits) : m_(msg), limits_(limits) {}

  std::vector<Node> run() {
    nodes_.emplace_back();
    cur_ = 0;
    size_t pos = 0;
    enum { kHeader, kToBoundary, kToEof, kSkipBoundaryLine, kDone } state = kHeader;
    const size_t n = m_.size();
    while (state != kDone) {
      switch (state) {
        case kHeader: {
          int next = parse_header(pos);
          state = next == 0 ? kHeader : next == 1 ? kToBoundary : kToEof;
          break;
        }
        case kToBoundary: {
          size_t q = pos;
          const BoundaryEntry* found = nullptr;
          bool epilogue = false;
          for (;;) {
            found = find_boundary(q, &epilogue);
            if (found) break;
            q = next_dash_line(q);
            if (q == std::string_view::npos) break;
          }
          if (!found) {
            add_body(cur_, pos, n);
            pos = n;
            state = kDone;
            break;
          }
          bool first_line = q == pos;
          size_t nl = q;
          if (!first_line) {
            nl = q - 1;
            if (nl > pos && m_[nl - 1] == '\r') --nl;
          }
          add_body(cur_, pos, nl);
          // Back to the multipart the boundary belongs to.
          int owner = found->part;
          size_t blen = found->text.size();
          while (cur_ != owner) finish(cur_);
          while (!boundaries_.empty() && boundaries_.back().part != owner) boundaries_.pop_back();
          if (epilogue) boundaries_.pop_back();
          size_t line = (first_line ? 0 : (m_[nl] == '\r' ? 2 : 1)) + 2 + blen + (epilogue ? 2 : 0);
          add_body(cur_, nl, nl + line);
          pos = nl + line;
          state = kSkipBoundaryLine;
          break;
        }
        case kSkipBoundaryLine: {
          size_t lf = m_.find('\n', pos);
          if (lf == std::string_view::npos) {
            add_body(cur_, pos, n);
            pos = n;
            state = kDone;
            break;
          }
          add_body(cur_, pos, lf + 1);
          pos = lf + 1;
          if (boundaries_.empty() || boundaries_.back().part != cur_) {
            state = boundaries_.empty() ? kToEof : kToBoundary;  // the epilogue
          } else {
            new_child(pos, true);
            state = kHeader;
          }
          break;
        }
        case kToEof:
          add_body(cur_, pos, n);
          pos = n;
          state = kDone;
          break;
        case kDone:
          break;
      }
    }
    while (cur_ != 0) finish(cur_);
    return std::move(nodes_);
  }

 private:
  void add_body(int part, size_t a, size_t b) {
    if (b <= a) return;
    nodes_[static_cast<size_t>(part)].body += b - a;
    nodes_[static_cast<size_t>(part)].lines += count_lf(m_, a, b);
  }

  void finish(int part) {
    Node& child = nodes_[static_cast<size_t>(part)];
    Node& parent = nodes_[static_cast<size_t>(child.parent)];
    parent.body += child.hdr + child.body;
    parent.lines += child.hdr_lines + child.lines;
    cur_ = child.parent;
  }

  void new_child(size_t pos, bool is_mime) {
    Node child;
    child.pos = pos;
    child.parent = cur_;
    child.depth = nodes_[static_cast<size_t>(cur_)].depth + 1;
    child.is_mime = is_mime;
    int id = static_cast<int>(nodes_.size());
    nodes_[static_cast<size_t>(cur_)].children.push_back(id);
    nodes_.push_back(std::move(child));
    cur_ = id;
  }

  bool too_deep(const Node& n) const { return n.depth + 1 >= limits_.max_depth; }

  // The start of the first line after the one at `q` that begins with "--" (only such a line can be a
  // boundary), or npos: found by its dashes, not line by line (a base64 body has none).
  size_t next_dash_line(size_t q) const {
    const char* p = m_.data();
    const size_t n = m_.size();
    for (size_t from = q + 1; from + 1 < n;) {
      const void* d = std::memchr(p + from, '-', n - 1 - from);
      if (!d) break;
      size_t i = static_cast<size_t>(static_cast<const char*>(d) - p);
      if (p[i - 1] == '\n' && p[i + 1] == '-') return i;
      from = i + 1;
    }
    return std::string_view::npos;
  }

  // The boundary that the line at `q` starts, if any.
  const BoundaryEntry* find_boundary(size_t q, bool* epilogue) const {
    if (boundaries_.empty() || nodes_.size() >= limits_.max_parts) return nullptr;
    if (m_.size() - q < 2 || m_[q] != '-' || m_[q + 1] != '-') return nullptr;
    std::string_view data = m_.substr(q + 2);
    const BoundaryEntry* best = nullptr;
    for (auto it = boundaries_.rbegin(); it != boundaries_.rend(); ++it) {
      const std::string& b = it->text;
      if (b.size() <= data.size() && (!best || best->text.size() < b.size()) &&
          (b.empty() || (b[0] == data[0] && std::memcmp(b.data(), data.data(), b.size()) == 0)))
        best = &*it;
    }
    if (best) {
      size_t len = best->text.size();
      *epilogue = data.size() >= len + 2 && data[len] == '-' && data[len + 1] == '-';
    }
    return best;
  }

  // Parses the header of the current part from `pos` (where the reading is; the part's recorded position
  // can be before it, see below); returns 0 when a child's header follows (message/rfc822), 1 when the body
  // runs to a boundary, 2 when it runs to the end.
  int parse_header(size_t& pos) {
    const size_t n = m_.size();
    const size_t start = pos;
    size_t q = start;
    size_t prev_nl = 0;  // the line end of the last line read
    bool eoh = false, cut = false;
    bool dummy;
    while (q < n) {
      if (find_boundary(q, &dummy)) {
        cut = true;
        break;
      }
      size_t lf = m_.find('\n', q);
      if (lf == std::string_view::npos) {
        q = n;
        prev_nl = 0;
        break;
      }
      bool blank = lf == q || (lf == q + 1 && m_[q] == '\r');
      prev_nl = lf > q && m_[lf - 1] == '\r' ? 2 : 1;
      q = lf + 1;
      if (blank) {
        eoh = true;
        break;
      }
    }
    int next = header_says(start, q, eoh);
    Node& node = nodes_[static_cast<size_t>(cur_)];
    if (eoh && q < n) {
      // One more look for a boundary line after the blank line, as Dovecot: one that is not the part's own
      // ends the header there too, and the blank line then belongs to the boundary.
      const BoundaryEntry* b = find_boundary(q, &dummy);
      if (b && b->part != cur_) cut = true;
    }
    size_t hdr_end = q;
    if (cut && prev_nl > 0) {
      // The line end before the boundary line belongs to the boundary: to the parent's body.
      hdr_end -= prev_nl;
      Node& parent = nodes_[static_cast<size_t>(node.parent)];
      parent.body += prev_nl;
      parent.lines += 1;
    }
    node.hdr = hdr_end - start;
    node.hdr_lines = count_lf(m_, start, hdr_end);
    pos = q;
    if (next == 0) {
      // message/rfc822: Dovecot places the child where the part's header ends by its size, which is
      // before the reading position when the blank line went to the boundary; the child is then empty,
      // cut by the same boundary line. Unless that child is the last part the limit allows: boundary lines
      // are no longer seen then, and Dovecot's child would be read one line end off its position. Such a
      // part is kept as an opaque leaf instead.
      size_t child_pos = node.pos + node.hdr;
      if (child_pos == pos || nodes_.size() + 1 < limits_.max_parts) {
        new_child(child_pos, false);
        return 0;
      }
      node.rfc822 = false;
      node.overflow = true;
      node.type = "application";
      node.subtype = "octet-stream";
      node.params.clear();
      return boundaries_.empty() ? 2 : 1;
    }
    return next;
  }

  // Applies what the header lines in [begin, end) say to the current part: MIME-ness, type, parameters,
  // boundary (pushed when the part is a multipart that may nest), transfer encoding. Returns as
  // parse_header, but does not create the message/rfc822 child.
  int header_says(size_t begin, size_t end, bool eoh) {
    Node& node = nodes_[static_cast<size_t>(cur_)];
    // What the header says.
    bool seen_ct = false;
    std::string boundary;
    bool have_boundary = false;
    std::string ct_str;
    std::vector<std::pair<std::string, std::string>> params;
    bool have_cte = false;
    for (const HeaderField& f : split_header(m_.substr(begin, end - begin))) {
      if (iequals(f.name, "Mime-Version")) {
        node.is_mime = true;
      } else if (iequals(f.name, "Content-Type")) {
        node.is_mime = true;
        if (seen_ct) continue;
        seen_ct = true;
        Lexer lx(f.value);
        lx.skip_lwsp();
        int ret = lx.content_type(ct_str);
        if (iequals(ct_str, "message/rfc822")) {
          node.rfc822 = true;
        } else if (istarts_with(ct_str, "multipart/")) {
          node.multipart = true;
          node.digest = iequals(std::string_view(ct_str).substr(10), "digest");
        }
        if (ret < 0) continue;
        params = parse_params(lx);
        if (node.multipart) {
          for (const auto& [k, v] : params) {
            if (iequals(k, "boundary")) {
              boundary = v.substr(0, kMaxBoundary);
              have_boundary = true;
              break;
            }
          }
        }
      } else if (!have_cte && iequals(f.name, "Content-Transfer-Encoding")) {
        if (auto t = parse_single_token(f.value); t && !t->empty()) {
          node.encoding = to_lower(*t);
          have_cte = true;
        }
      }
    }
    bool push = eoh && have_boundary && node.is_mime;
    if (push && too_deep(node)) {
      node.multipart = false;
      node.overflow = true;
      push = false;
    }
    if (!node.is_mime) {
      node.multipart = node.digest = node.rfc822 = false;
      node.encoding = "7bit";
    }
    if (node.is_mime && seen_ct) {
      size_t slash = ct_str.find('/');
      node.type = to_lower(ct_str.substr(0, slash));
      node.subtype = slash == std::string::npos ? "" : to_lower(ct_str.substr(slash + 1));
      for (auto& [k, v] : params) {
        std::string key = to_lower(k);
        if (!key.empty() && key.back() == '*') {
          key.pop_back();
          node.params.emplace_back(std::move(key), decode_2231(v));
        } else {
          node.params.emplace_back(std::move(key), std::move(v));
        }
      }
    } else {
      bool digest_child = node.parent >= 0 && nodes_[static_cast<size_t>(node.parent)].digest;
      if (digest_child) {
        node.rfc822 = true;
        node.type = "message";
        node.subtype = "rfc822";
      }
    }
    if (push) {
      boundaries_.push_back({cur_, boundary});
      return 1;
    }
    if (node.rfc822) {
      if (!too_deep(node) && nodes_.size() < limits_.max_parts) return 0;
      node.rfc822 = false;
      node.overflow = true;
    }
    if (node.overflow) {
      node.type = "application";
      node.subtype = "octet-stream";
      node.params.clear();
    }
    return boundaries_.empty() ? 2 : 1;
  }

  std::string_view m_;
  Limits limits_;
  std::vector<Node> nodes_;
  std::vector<BoundaryEntry> boundaries_;
  int cur_ = 0;
};

// ---- Decoders ----

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Lenient base64: bytes outside the alphabet are skipped; '=' ends a quantum (what follows is decoded on
// its own, as when base64 blocks were concatenated).
std::string decode_base64(std::string_view in) {
  std::string out;
  out.reserve(in.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = base64_value(c);
    if (v < 0) {
      if (c == '=') {
        acc = 0;
        bits = 0;
      }
      continue;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// Quoted-printable: hard line breaks become CRLF, white space before them is dropped, "=" at a line end
// is a soft break, "=XX" (either case) a byte; a "=" that starts nothing valid stays as it is.
std::string decode_qp(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t pos = 0;
  while (pos <= in.size()) {
    size_t lf = in.find('\n', pos);
    bool has_lf = lf != std::string_view::npos;
    std::string_view line = in.substr(pos, (has_lf ? lf : in.size()) - pos);
    if (!line.empty() && line.back() == '\r' && has_lf) line.remove_suffix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    bool soft = false;
    for (size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (c != '=') {
        out += c;
        continue;
      }
      if (i + 1 == line.size()) {
        soft = true;
        break;
      }
      int h = hex_value(line[i + 1]);
      int l = i + 2 < line.size() ? hex_value(line[i + 2]) : -1;
      if (h >= 0 && l >= 0) {
        out += static_cast<char>(h * 16 + l);
        i += 2;
      } else {
        out += c;
      }
    }
    if (!has_lf) break;
    if (!soft) out += "\r\n";
    pos = lf + 1;
  }
  return out;
}

// Appends `cp` as UTF-8.
void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// How many bytes from s[i] on are ASCII (the fast path of the UTF-8 walks below: most text is).
size_t ascii_run(std::string_view s, size_t i) {
  size_t k = i;
  while (k < s.size() && static_cast<unsigned char>(s[k]) < 0x80) ++k;
  return k - i;
}

// Decodes one UTF-8 sequence at s[i]; returns its length, 0 when invalid (no overlongs or surrogates).
size_t next_utf8(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, v = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, v = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

// UTF-8 as it is, each invalid byte replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (size_t n = ascii_run(s, i)) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    uint32_t cp;
    size_t len = next_utf8(s, i, &cp);
    if (len == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

// Simple and some full case folding: ASCII, Latin-1, Latin Extended-A/B (the regular pairs), Latin
// Extended Additional, Greek, Cyrillic, Armenian, Georgian, Glagolitic, fullwidth Latin.
void fold_code_point(std::string& out, uint32_t c) {
  auto pair_even = [](uint32_t v) { return (v % 2 == 0) ? v + 1 : v; };
  auto pair_odd = [](uint32_t v) { return (v % 2 == 1) ? v + 1 : v; };
  uint32_t f = c;
  if (c < 0x80) {
    if (c >= 'A' && c <= 'Z') f = c + 32;
  } else if (c == 0xB5) {
    f = 0x3BC;
  } else if (c >= 0xC0 && c <= 0xDE && c != 0xD7) {
    f = c + 32;
  } else if (c == 0xDF || c == 0x1E9E) {
    out += "ss";
    return;
  } else if (c >= 0x100 && c <= 0x12F) {
    f = pair_even(c);
  } else if (c == 0x130) {
    out += "i\xCC\x87";
    return;
  } else if ((c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) {
    f = pair_even(c);
  } else if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) {
    f = pair_odd(c);
  } else if (c == 0x178) {
    f = 0xFF;
  } else if (c == 0x17F) {
    f = 's';
  } else if (c >= 0x1CD && c <= 0x1DC) {
    f = pair_odd(c);
  } else if ((c >= 0x1DE && c <= 0x1EF) || (c >= 0x1F8 && c <= 0x21F) || (c >= 0x222 && c <= 0x233) ||
             (c >= 0x246 && c <= 0x24F)) {
    f = pair_even(c);
  } else if (c == 0x1C4 || c == 0x1C5) {
    f = 0x1C6;
  } else if (c == 0x1C7 || c == 0x1C8) {
    f = 0x1C9;
  } else if (c == 0x1CA || c == 0x1CB) {
    f = 0x1CC;
  } else if (c == 0x1F1 || c == 0x1F2) {
    f = 0x1F3;
  } else if (c == 0x386) {
    f = 0x3AC;
  } else if (c >= 0x388 && c <= 0x38A) {
    f = c + 37;
  } else if (c == 0x38C) {
    f = 0x3CC;
  } else if (c == 0x38E || c == 0x38F) {
    f = c + 63;
  } else if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB)) {
    f = c + 32;
  } else if (c == 0x3C2) {
    f = 0x3C3;
  } else if (c == 0x3D0) {
    f = 0x3B2;
  } else if (c == 0x3D1 || c == 0x3F4) {
    f = 0x3B8;
  } else if (c == 0x3D5) {
    f = 0x3C6;
  } else if (c == 0x3D6) {
    f = 0x3C0;
  } else if (c >= 0x3D8 && c <= 0x3EF) {
    f = pair_even(c);
  } else if (c == 0x3F0) {
    f = 0x3BA;
  } else if (c == 0x3F1) {
    f = 0x3C1;
  } else if (c == 0x3F5) {
    f = 0x3B5;
  } else if (c >= 0x400 && c <= 0x40F) {
    f = c + 80;
  } else if (c >= 0x410 && c <= 0x42F) {
    f = c + 32;
  } else if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F)) {
    f = pair_even(c);
  } else if (c == 0x4C0) {
    f = 0x4CF;
  } else if (c >= 0x4C1 && c <= 0x4CE) {
    f = pair_odd(c);
  } else if (c >= 0x531 && c <= 0x556) {
    f = c + 48;
  } else if (c >= 0x10A0 && c <= 0x10C5) {
    f = c + 7264;
  } else if ((c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF)) {
    f = pair_even(c);
  } else if (c == 0x2126) {
    f = 0x3C9;
  } else if (c == 0x212A) {
    f = 'k';
  } else if (c == 0x212B) {
    f = 0xE5;
  } else if (c >= 0x2160 && c <= 0x216F) {
    f = c + 16;
  } else if (c >= 0x24B6 && c <= 0x24CF) {
    f = c + 26;
  } else if (c >= 0x2C00 && c <= 0x2C2F) {
    f = c + 48;
  } else if (c >= 0xFF21 && c <= 0xFF3A) {
    f = c + 32;
  }
  put_utf8(out, f);
}

bool identity_charset(std::string_view cs) {
  return iequals(cs, "utf-8") || iequals(cs, "utf8") || iequals(cs, "us-ascii") || iequals(cs, "ascii") ||
         cs.empty();
}

// One encoded word (RFC 2047) at s[i] ("=?charset?e?text?="): its charset (without an RFC 2231
// "*language"), its decoded bytes and its length.
bool encoded_word(std::string_view s, size_t i, std::string_view* charset, std::string* raw, size_t* len) {
  if (s.compare(i, 2, "=?") != 0) return false;
  size_t q1 = s.find('?', i + 2);
  if (q1 == std::string_view::npos || q1 == i + 2 || q1 + 2 >= s.size() || s[q1 + 2] != '?') return false;
  char enc = s[q1 + 1];
  if (enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q') return false;
  size_t text_begin = q1 + 3;
  size_t end = s.find("?=", text_begin);
  if (end == std::string_view::npos) return false;
  *charset = s.substr(i + 2, q1 - i - 2);
  if (size_t star = charset->find('*'); star != std::string_view::npos) *charset = charset->substr(0, star);
  std::string_view text = s.substr(text_begin, end - text_begin);
  raw->clear();
  if (enc == 'B' || enc == 'b') {
    *raw = decode_base64(text);
  } else {
    for (size_t k = 0; k < text.size(); ++k) {
      char c = text[k];
      if (c == '_') {
        *raw += ' ';
      } else if (c == '=' && k + 2 < text.size() && hex_value(text[k + 1]) >= 0 &&
                 hex_value(text[k + 2]) >= 0) {
        *raw += static_cast<char>(hex_value(text[k + 1]) * 16 + hex_value(text[k + 2]));
        k += 2;
      } else {
        *raw += c;
      }
    }
  }
  *len = end + 2 - i;
  return true;
}

}  // namespace

// ---- Public: lower-level pieces ----

std::vector<HeaderField> split_header(std::string_view h) {
  std::vector<HeaderField> out;
  // Room for a field per line; at most 64, as a huge header must not reserve room it may not need.
  out.reserve(std::min<size_t>(postern::count_lf(h) + 1, 64));
  size_t pos = 0;
  const size_t n = h.size();
  while (pos < n) {
    size_t lf = h.find('\n', pos);
    size_t content_end = lf == std::string_view::npos ? n : lf;
    size_t next = lf == std::string_view::npos ? n : lf + 1;
    if (lf != std::string_view::npos && content_end > pos && h[content_end - 1] == '\r') --content_end;
    bool continuation = !out.empty() && is_lwsp(h[pos]);
    if (content_end == pos && !continuation) break;  // the blank line ending the header
    if (continuation) {
      HeaderField& f = out.back();
      if (!f.joined && f.value.data() + f.value.size() == h.data() + pos - 1) {
        // The line before ended in a bare LF: the joined value is the header's text as it is.
        size_t start = static_cast<size_t>(f.value.data() - h.data());
        f.value = h.substr(start, content_end - start);
      } else {
        if (!f.joined) f.joined = std::make_shared<std::string>(f.value);
        *f.joined += '\n';
        f.joined->append(h.substr(pos, content_end - pos));
        f.value = *f.joined;
      }
      f.end = next;
    } else {
      HeaderField f;
      f.begin = pos;
      f.end = next;
      size_t line_end = lf == std::string_view::npos ? n : lf;
      size_t colon = h.substr(pos, line_end - pos).find(':');
      if (colon == std::string_view::npos) {
        f.name = c_prefix(h.substr(pos, content_end - pos));
      } else {
        colon += pos;
        f.colon = true;
        size_t name_end = colon;
        while (name_end > pos && is_lwsp(h[name_end - 1])) --name_end;
        f.name = c_prefix(h.substr(pos, name_end - pos));
        std::string_view v = colon + 1 <= content_end ? h.substr(colon + 1, content_end - colon - 1) : "";
        // Dovecot reads a line of kLongLine bytes or more in pieces, the first one ending at its last
        // white space; the white space after the colon is skipped in the first piece only.
        size_t piece = v.size();
        bool long_line = lf == std::string_view::npos ? n - pos > kLongLine + 1 : lf - pos >= kLongLine;
        if (long_line && colon - pos < kLongLine) {
          size_t window = pos + kLongLine + 1;  // the bytes Dovecot's buffer holds
          for (size_t i = window - 1; i > colon; --i) {
            if (is_lwsp(h[i])) {
              piece = i - colon - 1;
              break;
            }
          }
        }
        std::string_view first = v.substr(0, piece);
        size_t skip = 0;
        while (skip < first.size() && is_lwsp(first[skip])) ++skip;
        if (skip == first.size()) skip = !first.empty() && is_lwsp(first[0]) ? 1 : 0;
        f.value = v.substr(skip);
      }
      out.push_back(std::move(f));
    }
    pos = next;
  }
  return out;
}

StructuredValue parse_structured(std::string_view value, bool type_subtype) {
  StructuredValue out;
  Lexer lx(value);
  lx.skip_lwsp();
  std::string str;
  if (type_subtype) {
    int ret = lx.content_type(str);
    size_t slash = str.find('/');
    out.type = str.substr(0, slash);
    if (slash != std::string::npos) out.subtype = str.substr(slash + 1);
    if (ret < 0) return out;
  } else {
    if (lx.mime_token(str) < 0) return out;
    out.type = str;
  }
  out.ok = true;
  out.params = parse_params(lx);
  return out;
}

std::optional<std::string> parse_single_token(std::string_view value) {
  Lexer lx(value);
  lx.skip_lwsp();
  std::string str;
  if (lx.mime_token(str) < 0 || lx.skip_lwsp() != 0 || str.empty()) return std::nullopt;
  return str;
}

std::vector<std::string> parse_language(std::string_view value) {
  std::vector<std::string> langs;
  Lexer lx(value);
  lx.skip_lwsp();
  std::string str;
  while (lx.atom(str) >= 0) {
    langs.push_back(str);
    str.clear();
    if (lx.at_end() || *lx.p != ',') break;
    ++lx.p;
    lx.skip_lwsp();
  }
  return langs;
}

std::vector<Address> parse_addresses(std::string_view value) {
  AddressParser parser(value);
  parser.list();
  return std::move(parser.out);
}

// ---- Public: structure ----

Part parse(std::string_view message, const Limits& limits) {
  Limits lim = limits;
  if (lim.max_depth < 1) lim.max_depth = 1;
  if (lim.max_parts < 1) lim.max_parts = 1;
  std::vector<Node> nodes = StructureParser(message, lim).run();
  // Nodes are in pre-order; build the tree bottom-up without recursion.
  std::vector<Part> parts(nodes.size());
  for (size_t i = nodes.size(); i-- > 0;) {
    Node& nd = nodes[i];
    Part& p = parts[i];
    p.header_begin = nd.pos;
    p.body_begin = nd.pos + nd.hdr;
    p.body_end = p.body_begin + nd.body;
    p.body_lines = nd.lines;
    p.type = std::move(nd.type);
    p.subtype = std::move(nd.subtype);
    p.params = std::move(nd.params);
    p.encoding = std::move(nd.encoding);
    p.children.reserve(nd.children.size());
    for (int c : nd.children) p.children.push_back(std::move(parts[static_cast<size_t>(c)]));
  }
  return std::move(parts[0]);
}

// ---- Public: decoders ----

std::optional<std::string> decode_transfer(std::string_view body, std::string_view encoding) {
  if (encoding.empty() || iequals(encoding, "7bit") || iequals(encoding, "8bit") ||
      iequals(encoding, "binary"))
    return std::string(body);
  if (iequals(encoding, "base64")) return decode_base64(body);
  if (iequals(encoding, "quoted-printable")) return decode_qp(body);
  return std::nullopt;
}

std::string to_utf8(std::string_view text, std::string_view charset) {
  if (identity_charset(charset)) return sanitize_utf8(text);
  // Only plain charset names reach iconv (no "//" suffixes, no paths).
  if (charset.size() > 64) return sanitize_utf8(text);
  for (char c : charset) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':'))
      return sanitize_utf8(text);
  }
  std::string cs(charset);
  iconv_t cd = iconv_open("UTF-8", cs.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) return sanitize_utf8(text);
  std::string out;
  out.reserve(text.size() * 2);
  std::string in(text);
  char* inp = in.data();
  size_t inleft = in.size();
  char buf[4096];
  while (inleft > 0) {
    char* outp = buf;
    size_t outleft = sizeof buf;
    size_t r = iconv(cd, &inp, &inleft, &outp, &outleft);
    out.append(buf, static_cast<size_t>(outp - buf));
    if (r != static_cast<size_t>(-1)) break;
    if (errno == E2BIG) continue;
    out += kReplacement;
    if (errno == EILSEQ) {
      ++inp;
      --inleft;
    } else {  // EINVAL: incomplete sequence at the end
      break;
    }
  }
  char* outp = buf;
  size_t outleft = sizeof buf;
  iconv(cd, nullptr, nullptr, &outp, &outleft);
  out.append(buf, static_cast<size_t>(outp - buf));
  iconv_close(cd);
  return sanitize_utf8(out);
}

std::string decode_header_value(std::string_view value) {
  std::string out;
  // Adjacent encoded words (only white space between them, which goes) in one charset are converted
  // together: senders split multi-byte characters between them.
  std::string pending, pending_charset, ws;
  bool in_words = false;
  auto flush = [&] {
    out += to_utf8(pending, pending_charset);
    pending.clear();
    out += ws;
    ws.clear();
  };
  size_t pos = 0;
  while (pos < value.size()) {
    std::string_view charset;
    std::string raw;
    size_t len = 0;
    char c = value[pos];
    if (c == '=' && encoded_word(value, pos, &charset, &raw, &len)) {
      ws.clear();
      if (in_words && iequals(charset, pending_charset)) {
        pending += raw;
      } else {
        if (in_words) flush();
        pending = std::move(raw);
        pending_charset = std::string(charset);
      }
      in_words = true;
      pos += len;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (c == ' ' || c == '\t') (in_words ? ws : out) += c;
      ++pos;
    } else {
      if (in_words) flush();
      in_words = false;
      size_t next = pos + 1;
      while (next < value.size() && value[next] != '=' && value[next] != ' ' && value[next] != '\t' &&
             value[next] != '\r' && value[next] != '\n')
        ++next;
      out += sanitize_utf8(value.substr(pos, next - pos));
      pos = next;
    }
  }
  if (in_words) flush();
  return out;
}

std::string fold_case(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) {
    if (size_t n = ascii_run(utf8, i)) {
      size_t at = out.size();
      out.append(utf8.substr(i, n));
      for (size_t k = at; k < out.size(); ++k)
        if (out[k] >= 'A' && out[k] <= 'Z') out[k] = static_cast<char>(out[k] + 32);
      i += n;
      continue;
    }
    uint32_t cp;
    size_t len = next_utf8(utf8, i, &cp);
    if (len == 0) {  // not UTF-8: kept as it is
      out += utf8[i];
      ++i;
      continue;
    }
    fold_code_point(out, cp);
    i += len;
  }
  return out;
}

std::string searchable_headers(std::string_view message) {
  size_t end = 0;
  {
    // The header ends at the first blank line.
    size_t pos = 0;
    while (pos < message.size()) {
      size_t lf = message.find('\n', pos);
      if (lf == std::string_view::npos) {
        pos = message.size();
        break;
      }
      if (lf == pos || (lf == pos + 1 && message[pos] == '\r')) break;
      pos = lf + 1;
    }
    end = pos;
  }
  std::string out;
  for (const HeaderField& f : split_header(message.substr(0, end))) {
    std::string value;
    for (char c : f.value) {
      if (c != '\n') value += c;
    }
    out += sanitize_utf8(f.name);
    out += ": ";
    out += decode_header_value(value);
    out += '\n';
  }
  return fold_case(out);
}

std::string searchable_body(std::string_view message, const Limits& limits) {
  Part root = parse(message, limits);
  std::string out;
  std::vector<const Part*> stack{&root};
  while (!stack.empty()) {
    const Part* p = stack.back();
    stack.pop_back();
    for (auto it = p->children.rbegin(); it != p->children.rend(); ++it) stack.push_back(&*it);
    if (!p->children.empty() || p->type != "text") continue;
    std::string_view body = message.substr(p->body_begin, p->body_end - p->body_begin);
    std::optional<std::string> decoded = decode_transfer(body, p->encoding);
    std::string charset = "us-ascii";
    for (const auto& [k, v] : p->params) {
      if (k == "charset") charset = v;
    }
    out += to_utf8(decoded ? *decoded : std::string(body), charset);
    out += '\n';
  }
  return fold_case(out);
}

}  // namespace postern::mime

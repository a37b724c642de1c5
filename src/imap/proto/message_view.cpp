// imap/proto/message_view.cpp: FETCH ENVELOPE / BODY / BODYSTRUCTURE / BODY[section] / BINARY[section],
// rendered as Dovecot 2.3 renders them (src/imap/proto/message_view_test.cpp holds Dovecot's answers for
// the messages in tests/data/mime). Strings are written with Dovecot's quoting rules rather than
// writer.hpp's: quoted unless they hold CR, LF, 8-bit bytes or more than four '"' / '\', whatever their
// length; subjects and display names "for humans" (white space runs collapsed, a literal when anything
// had to change). Section bytes are sent as Dovecot sends a Maildir message stored with LF line ends:
// every LF not preceded by CR becomes CRLF, and (BODY[] only) NUL becomes 0x80.

#include "imap/proto/message_view.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "base/strings.hpp"

namespace postern::imap::proto {
namespace {

using mime::Part;

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
constexpr std::string_view kEmptyBody =
    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
constexpr std::string_view kEmptyBodyStructure =
    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";

using Params = std::vector<std::pair<std::string, std::string>>;

// ---- Strings, as Dovecot's imap-quote.c writes them ----

std::string_view c_string(std::string_view s) {  // Dovecot's strings end at a NUL
  size_t nul = s.find('\0');
  return nul == std::string_view::npos ? s : s.substr(0, nul);
}

void put_literal(std::string& out, std::string_view s) {
  out += '{';
  out += std::to_string(s.size());
  out += "}\r\n";
  out += s;
}

void put_string(std::string& out, std::string_view s, bool utf8) {
  s = c_string(s);
  int escapes = 0;
  bool literal = false, eight_bit = false;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      if (escapes++ >= 4) {
        literal = true;
        break;
      }
    } else if (c == '\r' || c == '\n') {
      literal = true;
      break;
    } else if (c >= 0x80) {
      eight_bit = true;
    }
  }
  if (!literal && eight_bit && !(utf8 && valid_utf8(s))) literal = true;
  if (literal) return put_literal(out, s);
  out += '"';
  if (escapes == 0) {
    out += s;
  } else {
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
  }
  out += '"';
}

void put_nstring(std::string& out, const std::optional<std::string>& s, bool utf8) {
  if (!s) {
    out += "NIL";
    return;
  }
  put_string(out, *s, utf8);
}

// NIL or a string with its line breaks removed (a space where the next line does not begin with one).
void put_nstring_nolf(std::string& out, const std::optional<std::string>& s, bool utf8) {
  if (!s) {
    out += "NIL";
    return;
  }
  std::string_view v = c_string(*s);
  if (v.find_first_of("\r\n") == std::string_view::npos) return put_string(out, v, utf8);
  std::string joined;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c != '\r' && c != '\n') {
      joined += c;
      continue;
    }
    char next = i + 1 < v.size() ? v[i + 1] : '\0';
    if (next != ' ' && next != '\t' && next != '\r' && next != '\n' && next != '\0') joined += ' ';
  }
  put_string(out, joined, utf8);
}

// A subject or display name: TABs and line breaks become spaces, runs of spaces one space, no leading or
// trailing space; a literal whenever that changed anything (or the text has '"', '\' or 8-bit bytes).
void put_for_humans(std::string& out, std::string_view s, bool utf8) {
  s = c_string(s);
  bool allow_8bit = utf8 && valid_utf8(s);
  size_t remove = 0;
  bool ws_prefix = true, last_lwsp = true, modify = false;
  for (unsigned char c : s) {
    switch (c) {
      case '\r':
      case '\n':
      case '\t':
        modify = true;
        [[fallthrough]];
      case ' ':
        if (last_lwsp) {
          modify = true;
          ++remove;
        }
        last_lwsp = true;
        break;
      case '"':
      case '\\':
        modify = true;
        last_lwsp = false;
        break;
      default:
        if (c >= 0x80 && !allow_8bit) modify = true;
        last_lwsp = false;
        break;
    }
    if (!last_lwsp) ws_prefix = false;
  }
  if (last_lwsp && !s.empty() && !ws_prefix) {
    modify = true;
    ++remove;
  }
  if (!modify) {
    out += '"';
    out += s;
    out += '"';
    return;
  }
  if (remove == s.size()) {
    out += "\"\"";
    return;
  }
  std::string text;
  last_lwsp = true;
  ws_prefix = true;
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\t' || c == ' ') {
      if (!last_lwsp) text += ' ';
      last_lwsp = true;
    } else {
      text += c;
      last_lwsp = false;
    }
    if (!last_lwsp) ws_prefix = false;
  }
  if (last_lwsp && !s.empty() && !ws_prefix && !text.empty()) text.pop_back();
  put_literal(out, text);
}

// A header value as Dovecot stores it: NUL bytes become U+FFFD.
std::string header_strdup(std::string_view s) {
  if (s.find('\0') == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\0')
      out += kReplacement;
    else
      out += c;
  }
  return out;
}

// ---- What a part's header says ----

struct PartData {
  bool has_type = false, type_ok = false;
  std::string type, subtype;
  Params type_params;
  std::optional<std::string> encoding, id, description, md5, location, disposition;
  Params disposition_params;
  std::vector<std::string> language;
};

bool has_mime_fields(const std::vector<mime::HeaderField>& fields) {
  for (const auto& f : fields) {
    if (iequals(f.name, "Mime-Version") || iequals(f.name, "Content-Type")) return true;
  }
  return false;
}

// The Content-* fields the first time each appears (Content-Disposition: until one has parameters), or
// nothing at all when the part is not MIME (no MIME-Version and no Content-Type, outside a multipart).
PartData part_data(const std::vector<mime::HeaderField>& fields, bool is_mime) {
  PartData d;
  if (!is_mime) return d;
  for (const auto& f : fields) {
    if (f.name.size() < 8 || !iequals(f.name.substr(0, 8), "Content-")) continue;
    std::string_view name = f.name.substr(8);
    if (iequals(name, "ID")) {
      if (!d.id) d.id = header_strdup(f.value);
    } else if (iequals(name, "MD5")) {
      if (!d.md5) d.md5 = header_strdup(f.value);
    } else if (iequals(name, "Type")) {
      if (d.has_type) continue;
      mime::StructuredValue v = mime::parse_structured(f.value, true);
      d.has_type = true;
      d.type_ok = v.ok;
      d.type = std::move(v.type);
      d.subtype = std::move(v.subtype);
      d.type_params = std::move(v.params);
    } else if (iequals(name, "Transfer-Encoding")) {
      if (!d.encoding) d.encoding = mime::parse_single_token(f.value);
    } else if (iequals(name, "Language")) {
      if (d.language.empty()) d.language = mime::parse_language(f.value);
    } else if (iequals(name, "Location")) {
      if (!d.location) d.location = header_strdup(f.value);
    } else if (iequals(name, "Description")) {
      if (!d.description) d.description = header_strdup(f.value);
    } else if (iequals(name, "Disposition")) {
      if (!d.disposition_params.empty()) continue;
      mime::StructuredValue v = mime::parse_structured(f.value, false);
      if (!v.ok) continue;
      d.disposition = std::move(v.type);
      d.disposition_params = std::move(v.params);
    }
  }
  return d;
}

std::string_view header_of(std::string_view msg, const Part& p) {
  return msg.substr(p.header_begin, p.body_begin - p.header_begin);
}
std::string_view body_of(std::string_view msg, const Part& p) {
  return msg.substr(p.body_begin, p.body_end - p.body_begin);
}

// How Dovecot's parser flagged a part.
struct PartInfo {
  std::vector<mime::HeaderField> fields;
  bool is_mime = false;
  PartData data;
  bool multipart = false, rfc822 = false, truncated = false;
};

PartInfo part_info(std::string_view msg, const Part& p, bool parent_multipart, bool parent_digest) {
  PartInfo info;
  info.fields = mime::split_header(header_of(msg, p));
  info.is_mime = parent_multipart || has_mime_fields(info.fields);
  info.data = part_data(info.fields, info.is_mime);
  const PartData& d = info.data;
  info.multipart = p.type == "multipart" && d.type_ok && iequals(d.type, "multipart");
  info.rfc822 = p.type == "message" && p.subtype == "rfc822" && p.children.size() == 1;
  // A leaf that says it is a container (beyond the limits, or "Content-Type: multipart" without a
  // subtype) is shown as application/octet-stream.
  if (!info.multipart && !info.rfc822) {
    info.truncated =
        d.has_type ? iequals(c_string(d.type), "multipart") ||
                         (iequals(c_string(d.type), "message") && iequals(c_string(d.subtype), "rfc822"))
                   : parent_digest;
  }
  return info;
}

bool multipart_digest(const PartInfo& info) {
  return info.multipart && iequals(info.data.subtype, "digest");
}

// Sizes as sent: each LF without a CR before it counts two. Counted through per-block totals so that
// the sizes of nested parts cost no more than a pass over the message.
class VirtualSizes {
 public:
  explicit VirtualSizes(std::string_view msg) : msg_(msg) {
    block_.reserve(msg.size() / kBlock + 1);
    uint64_t n = 0;
    for (size_t b = 0; b * kBlock < msg.size(); ++b) {
      block_.push_back(n);
      n += bare_lf(b * kBlock, std::min(msg.size(), (b + 1) * kBlock));
    }
    block_.push_back(n);
  }
  // The size of [a, b) as sent (an LF at `a` counts two whatever precedes it).
  uint64_t size(size_t a, size_t b) const {
    uint64_t extra = before(b) - before(a);
    if (a < b && msg_[a] == '\n' && a > 0 && msg_[a - 1] == '\r') ++extra;
    return (b - a) + extra;
  }

 private:
  static constexpr size_t kBlock = 256;  // before() counts at most this many bytes
  uint64_t bare_lf(size_t a, size_t b) const {
    return count_bare_lf(msg_.substr(a, b - a), a > 0 && msg_[a - 1] == '\r');
  }
  uint64_t before(size_t x) const { return block_[x / kBlock] + bare_lf(x / kBlock * kBlock, x); }

  std::string_view msg_;
  std::vector<uint64_t> block_;  // bare LFs before each block
};

// ---- ENVELOPE ----

struct Envelope {
  std::optional<std::string> date, subject, in_reply_to, message_id;
  std::vector<mime::Address> from, sender, reply_to, to, cc, bcc;
};

Envelope envelope_of(const std::vector<mime::HeaderField>& fields) {
  Envelope e;
  for (const auto& f : fields) {
    std::vector<mime::Address>* list = nullptr;
    std::optional<std::string>* str = nullptr;
    std::string_view n = f.name;
    if (iequals(n, "Date"))
      str = &e.date;
    else if (iequals(n, "Subject"))
      str = &e.subject;
    else if (iequals(n, "In-Reply-To"))
      str = &e.in_reply_to;
    else if (iequals(n, "Message-ID"))
      str = &e.message_id;
    else if (iequals(n, "From"))
      list = &e.from;
    else if (iequals(n, "Sender"))
      list = &e.sender;
    else if (iequals(n, "Reply-To"))
      list = &e.reply_to;
    else if (iequals(n, "To"))
      list = &e.to;
    else if (iequals(n, "Cc"))
      list = &e.cc;
    else if (iequals(n, "Bcc"))
      list = &e.bcc;
    if (str) *str = header_strdup(f.value);  // the last one counts
    if (list) {                              // all of them count
      for (auto& a : mime::parse_addresses(f.value)) list->push_back(std::move(a));
    }
  }
  return e;
}

void put_addresses(std::string& out, const std::vector<mime::Address>& list, bool utf8) {
  if (list.empty()) {
    out += "NIL";
    return;
  }
  out += '(';
  for (const auto& a : list) {
    out += '(';
    if (a.name)
      put_for_humans(out, *a.name, utf8);
    else
      out += "NIL";
    out += ' ';
    put_nstring(out, a.route, utf8);
    out += ' ';
    put_nstring(out, a.mailbox, utf8);
    out += ' ';
    put_nstring(out, a.domain, utf8);
    out += ')';
  }
  out += ')';
}

void put_envelope(std::string& out, const Envelope& e, bool utf8) {
  put_nstring_nolf(out, e.date, utf8);
  out += ' ';
  if (e.subject)
    put_for_humans(out, *e.subject, utf8);
  else
    out += "NIL";
  out += ' ';
  put_addresses(out, e.from, utf8);
  out += ' ';
  put_addresses(out, e.sender.empty() ? e.from : e.sender, utf8);
  out += ' ';
  put_addresses(out, e.reply_to.empty() ? e.from : e.reply_to, utf8);
  out += ' ';
  put_addresses(out, e.to, utf8);
  out += ' ';
  put_addresses(out, e.cc, utf8);
  out += ' ';
  put_addresses(out, e.bcc, utf8);
  out += ' ';
  put_nstring_nolf(out, e.in_reply_to, utf8);
  out += ' ';
  put_nstring_nolf(out, e.message_id, utf8);
}

// ---- BODY / BODYSTRUCTURE ----

void put_params(std::string& out, const Params& params, bool default_charset, bool utf8) {
  if (!default_charset && params.empty()) {
    out += "NIL";
    return;
  }
  out += '(';
  bool seen_charset = false;
  for (size_t i = 0; i < params.size(); ++i) {
    if (i > 0) out += ' ';
    if (iequals(c_string(params[i].first), "charset")) seen_charset = true;
    put_string(out, params[i].first, utf8);
    out += ' ';
    put_string(out, params[i].second, utf8);
  }
  if (default_charset && !seen_charset) {
    if (!params.empty()) out += ' ';
    out += "\"charset\" \"us-ascii\"";
  }
  out += ')';
}

void put_extension_common(std::string& out, const PartData& d, bool utf8) {
  out += ' ';
  if (!d.disposition) {
    out += "NIL";
  } else {
    out += '(';
    put_string(out, *d.disposition, utf8);
    out += ' ';
    put_params(out, d.disposition_params, false, utf8);
    out += ')';
  }
  out += ' ';
  if (d.language.empty()) {
    out += "NIL";
  } else {
    out += '(';
    for (size_t i = 0; i < d.language.size(); ++i) {
      if (i > 0) out += ' ';
      put_string(out, d.language[i], utf8);
    }
    out += ')';
  }
  out += ' ';
  put_nstring_nolf(out, d.location, utf8);
}

struct Render {
  std::string_view msg;
  bool extended, utf8;
  VirtualSizes sizes;
};

void put_part(std::string& out, const Render& r, const Part& p, bool parent_multipart, bool parent_digest) {
  std::string_view msg = r.msg;
  bool extended = r.extended, utf8 = r.utf8;
  PartInfo info = part_info(msg, p, parent_multipart, parent_digest);
  const PartData& d = info.data;
  if (info.multipart) {
    if (p.children.empty()) {
      out += extended ? kEmptyBodyStructure : kEmptyBody;
    } else {
      bool digest = multipart_digest(info);
      for (const Part& child : p.children) {
        out += '(';
        put_part(out, r, child, true, digest);
        out += ')';
      }
    }
    out += ' ';
    put_string(out, d.subtype, utf8);
    if (!extended) return;
    out += ' ';
    put_params(out, d.type_params, false, utf8);
    put_extension_common(out, d, utf8);
    return;
  }

  bool text = false;
  if (info.rfc822) {
    out += "\"message\" \"rfc822\"";
  } else if (info.truncated) {
    out += "\"application\" \"octet-stream\"";
  } else if (!d.has_type) {
    out += "\"text\" \"plain\"";
    text = true;
  } else {
    text = iequals(c_string(d.type), "text");
    put_string(out, d.type, utf8);
    out += ' ';
    put_string(out, d.subtype, utf8);
  }
  out += ' ';
  put_params(out, d.type_params, text, utf8);
  out += ' ';
  put_nstring_nolf(out, d.id, utf8);
  out += ' ';
  put_nstring_nolf(out, d.description, utf8);
  out += ' ';
  if (d.encoding)
    put_string(out, *d.encoding, utf8);
  else
    out += "\"7bit\"";
  out += ' ';
  out += std::to_string(r.sizes.size(p.body_begin, p.body_end));
  if (text) {
    out += ' ';
    out += std::to_string(p.body_lines);
  } else if (info.rfc822) {
    const Part& child = p.children.front();
    out += " (";
    put_envelope(out, envelope_of(mime::split_header(header_of(msg, child))), utf8);
    out += ") (";
    put_part(out, r, child, false, false);
    out += ") ";
    out += std::to_string(p.body_lines);
  }
  if (!extended) return;
  out += ' ';
  put_nstring_nolf(out, d.md5, utf8);
  put_extension_common(out, d, utf8);
}

// ---- Sections ----

// The part a section path names, as Dovecot finds it: in a multipart the Nth child; elsewhere only 1 (the
// part itself); after a message/rfc822 part, the next number is inside the embedded message.
const Part* find_part(std::string_view msg, const Part& root, const std::vector<uint32_t>& path) {
  const Part* part = &root;
  bool parent_multipart = false;
  for (size_t i = 0; i < path.size(); ++i) {
    uint32_t num = path[i];
    bool more = i + 1 < path.size();
    PartInfo info = part_info(msg, *part, parent_multipart, false);
    if (info.multipart) {
      if (num == 0) num = 1;
      if (num > part->children.size()) return nullptr;
      part = &part->children[num - 1];
      parent_multipart = true;
      info = part_info(msg, *part, true, false);
    } else if (num != 1 || (more && !info.rfc822)) {
      return nullptr;
    }
    if (more && info.rfc822) {
      part = &part->children.front();
      parent_multipart = false;
    }
  }
  return part;
}

bool is_rfc822(const Part& p) {
  return p.type == "message" && p.subtype == "rfc822" && p.children.size() == 1;
}

// LF (without CR) to CRLF; NUL to 0x80 when asked.
void append_crlf(std::string& out, std::string_view s, bool nul_to_80) {
  out.reserve(out.size() + s.size() + s.size() / 16);
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\n' && (i == 0 || s[i - 1] != '\r')) out += '\r';
    out += (c == '\0' && nul_to_80) ? '\x80' : c;
  }
}

// A header field as Dovecot's HEADER.FIELDS writes it (from its cache of the fields): as it is, except for
// a name holding a NUL byte, which is cut there (Dovecot's names are C strings). HEADER.FIELDS.NOT sends
// the lines as they are.
void append_field(std::string& out, std::string_view header, const mime::HeaderField& f) {
  size_t name_end;
  if (f.colon) {
    name_end = header.find(':', f.begin);
    while (name_end > f.begin && (header[name_end - 1] == ' ' || header[name_end - 1] == '\t')) --name_end;
  } else {
    name_end = std::min(header.find('\n', f.begin), f.end);
    if (name_end < f.end && name_end > f.begin && header[name_end - 1] == '\r') --name_end;
  }
  out += f.name;
  out += header.substr(name_end, f.end - name_end);
}

// HEADER.FIELDS (.NOT): the matching fields in message order, then the blank line ending the header (one is
// added for the message's HEADER.FIELDS when its header had none; not for an embedded message's, as Dovecot).
std::string filter_header(std::string_view header, const std::vector<std::string>& names, bool exclude,
                          bool add_blank_line) {
  std::vector<mime::HeaderField> fields = mime::split_header(header);
  std::string out;
  for (const auto& f : fields) {
    bool match = false;
    for (const std::string& n : names) {
      if (f.colon && iequals(f.name, n)) {  // a line without a colon matches no name
        match = true;
        break;
      }
    }
    if (match == exclude) continue;
    if (exclude)
      out += header.substr(f.begin, f.end - f.begin);
    else
      append_field(out, header, f);
  }
  size_t eoh = fields.empty() ? 0 : fields.back().end;
  if (eoh < header.size())
    out += header.substr(eoh);
  else if (!exclude && add_blank_line)
    out += '\n';
  return out;
}

}  // namespace

size_t root_header_end(std::string_view message) {
  size_t pos = 0;
  while (pos < message.size()) {
    size_t lf = message.find('\n', pos);
    if (lf == std::string_view::npos) return message.size();
    if (lf == pos || (lf == pos + 1 && message[pos] == '\r')) return lf + 1;
    pos = lf + 1;
  }
  return pos;
}

namespace {

// ---- BINARY ----
// As Dovecot 2.3 converts (observed against it): a part's encoding is that of the last
// Content-Transfer-Encoding field of its header read up to the next blank line (even past a header a
// boundary line cut short), a folded field being unknown; a base64 / quoted-printable leaf is decoded and
// its header loses its Content-Transfer-Encoding fields, "Content-Transfer-Encoding: binary" being added
// before the blank line (an empty body leaves a complete header as it is); multiparts and message/rfc822
// parts are not decoded themselves (but a multipart's header and the whole message's are rewritten like a
// leaf's, an embedded message's is not); any part with an unknown encoding fails the whole conversion.
// Invalid base64 / quoted-printable is decoded leniently (Dovecot: NO [PARSE]).

enum class Cte { kIdentity, kBase64, kQp, kUnknown };

bool has_blank_line(std::string_view header) {
  std::vector<mime::HeaderField> fields = mime::split_header(header);
  return (fields.empty() ? 0 : fields.back().end) < header.size();
}

// The header as the converter reads it: the part's own when it ends with a blank line, else on up to the
// next blank line, but no further than kLookahead bytes past the part's header (Dovecot reads on without
// bound; a bound keeps BINARY[] of a message of many such parts linear).
constexpr size_t kLookahead = 2048;
std::string_view converter_header(std::string_view msg, const Part& p) {
  std::string_view own = header_of(msg, p);
  if (has_blank_line(own)) return own;
  std::string_view from = msg.substr(p.header_begin, own.size() + kLookahead);
  return from.substr(0, root_header_end(from));
}

Cte binary_cte(std::string_view msg, const Part& p) {
  const mime::HeaderField* last = nullptr;
  std::vector<mime::HeaderField> fields = mime::split_header(converter_header(msg, p));
  for (const auto& f : fields) {
    if (iequals(f.name, "Content-Transfer-Encoding")) last = &f;
  }
  if (!last) return Cte::kIdentity;
  if (last->value.find('\n') != std::string::npos) return Cte::kUnknown;
  std::optional<std::string> t = mime::parse_single_token(last->value);
  if (!t) return Cte::kUnknown;
  if (iequals(*t, "7bit") || iequals(*t, "8bit") || iequals(*t, "binary")) return Cte::kIdentity;
  if (iequals(*t, "base64")) return Cte::kBase64;
  if (iequals(*t, "quoted-printable")) return Cte::kQp;
  return Cte::kUnknown;
}

std::string decode_body(std::string_view body, Cte cte) {
  return *mime::decode_transfer(body, cte == Cte::kBase64 ? "base64" : "quoted-printable");
}

// The header of a decoded part, as Dovecot writes it: read from where the part begins up to the next blank
// line (past a header cut short by a boundary line, as Dovecot), without its Content-Transfer-Encoding
// fields, "Content-Transfer-Encoding: binary" added before the blank line. When no blank line comes before
// the end of the message, Dovecot sends that many bytes of the part as it is instead.
void append_binary_header(std::string& out, std::string_view msg, const Part& p) {
  std::string_view header = converter_header(msg, p);
  std::vector<mime::HeaderField> fields = mime::split_header(header);
  std::string filtered;
  for (const auto& f : fields) {
    if (!iequals(f.name, "Content-Transfer-Encoding"))
      append_crlf(filtered, header.substr(f.begin, f.end - f.begin), false);
  }
  size_t eoh = fields.empty() ? 0 : fields.back().end;
  if (eoh < header.size()) {
    filtered += "Content-Transfer-Encoding: binary\r\n";
    append_crlf(filtered, header.substr(eoh), false);
    out += filtered;
    return;
  }
  std::string raw;
  append_crlf(raw, header, false);
  out.append(raw, 0, filtered.size());
}

bool is_container(std::string_view msg, const Part& p, bool parent_multipart) {
  PartInfo info = part_info(msg, p, parent_multipart, false);
  return info.multipart || info.rfc822;
}

bool convert_part(std::string& out, std::string_view msg, const Part& p, bool parent_multipart, bool root);

// The body of container `p` with its parts converted.
bool convert_body(std::string& out, std::string_view msg, const Part& p) {
  bool multipart = !is_rfc822(p);
  size_t cursor = p.body_begin;
  for (const Part& child : p.children) {
    append_crlf(out, msg.substr(cursor, child.header_begin - cursor), false);
    if (!convert_part(out, msg, child, multipart, false)) return false;
    cursor = child.body_end;
  }
  if (p.body_end > cursor) append_crlf(out, msg.substr(cursor, p.body_end - cursor), false);
  return true;
}

// Appends part `p` ([header_begin, body_end)) converted; false when a part has an unknown encoding.
bool convert_part(std::string& out, std::string_view msg, const Part& p, bool parent_multipart, bool root) {
  std::string_view header = header_of(msg, p);
  Cte cte = binary_cte(msg, p);
  if (cte == Cte::kUnknown) return false;
  bool decode = cte != Cte::kIdentity;
  if (is_container(msg, p, parent_multipart)) {
    if (decode && (root || !is_rfc822(p)))
      append_binary_header(out, msg, p);
    else
      append_crlf(out, header, false);
    return convert_body(out, msg, p);
  }
  if (!decode || (p.body_end == p.body_begin && has_blank_line(header))) {
    append_crlf(out, msg.substr(p.header_begin, p.body_end - p.header_begin), false);
    return true;
  }
  append_binary_header(out, msg, p);
  out += decode_body(body_of(msg, p), cte);
  return true;
}

}  // namespace

std::string envelope(std::string_view message, bool utf8) {
  std::string out = "(";
  put_envelope(out, envelope_of(mime::split_header(message.substr(0, root_header_end(message)))), utf8);
  out += ')';
  return out;
}

std::string body_structure(std::string_view message, bool extended, bool utf8) {
  Part root = mime::parse(message);
  Render r{message, extended, utf8, VirtualSizes(message)};
  std::string out = "(";
  put_part(out, r, root, false, false);
  out += ')';
  return out;
}

std::string section_bytes(std::string_view message, const Section& section) {
  Part root = mime::parse(message);
  std::string_view bytes;
  std::string filtered;
  using Kind = Section::Kind;
  const Part* target = &root;  // the message whose header / text is wanted
  if (section.path.empty()) {
    if (section.kind == Kind::kAll) bytes = message;
    if (section.kind == Kind::kMime) return "";
  } else {
    const Part* part = find_part(message, root, section.path);
    if (!part) return "";
    if (section.kind == Kind::kAll) {
      bytes = body_of(message, *part);
    } else if (section.kind == Kind::kMime) {
      bytes = header_of(message, *part);
    } else if (is_rfc822(*part)) {
      target = &part->children.front();
    } else {
      return "";
    }
  }
  switch (section.kind) {
    case Kind::kHeader:
      bytes = header_of(message, *target);
      break;
    case Kind::kText:
      bytes = body_of(message, *target);
      break;
    case Kind::kHeaderFields:
    case Kind::kHeaderFieldsNot: {
      // As Dovecot, the fields are read from where the header begins up to the next blank line, even when
      // the part's header was cut short by a boundary line.
      std::string_view from = message.substr(target->header_begin);
      filtered = filter_header(from.substr(0, root_header_end(from)), section.fields,
                               section.kind == Kind::kHeaderFieldsNot, section.path.empty());
      bytes = filtered;
      break;
    }
    case Kind::kAll:
    case Kind::kMime:
      break;
  }
  std::string out;
  append_crlf(out, bytes, true);
  return out;
}

std::optional<std::string> binary_bytes(std::string_view message, const std::vector<uint32_t>& path) {
  Part root = mime::parse(message);
  std::string out;
  if (path.empty()) {
    if (!convert_part(out, message, root, false, true)) return std::nullopt;
    return out;
  }
  const Part* part = find_part(message, root, path);
  if (!part) return std::string();
  Cte cte = binary_cte(message, *part);
  if (cte == Cte::kUnknown) return std::nullopt;
  // Whether the parent is a multipart only matters for MIME-ness, which does not change the structure.
  if (is_container(message, *part, true)) {
    if (!convert_body(out, message, *part)) return std::nullopt;
    return out;
  }
  if (cte == Cte::kIdentity) {
    append_crlf(out, body_of(message, *part), false);
    return out;
  }
  return decode_body(body_of(message, *part), cte);
}

}  // namespace postern::imap::proto

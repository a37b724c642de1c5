// fuzz/mime_structure.cpp: libFuzzer target for the MIME structure parser and the FETCH renderings:
// mime::parse, then ENVELOPE / BODY / BODYSTRUCTURE, BODY[section] for the message and its first parts,
// BINARY, and the decoders on the header values. Properties: every part's offsets are ordered and within
// its parent (children in order, not overlapping), body line counts are the LFs of the body; rendering
// twice gives the same bytes; renderings are well formed IMAP (parentheses balanced outside quoted
// strings and literals, no CR / LF / NUL in quoted strings, CRLF only before a literal's bytes); decoded
// text is valid UTF-8; the work is bounded (Limits).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/strings.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "imap/proto/message_view.hpp"
#include "mime/message.hpp"

namespace {

using postern::mime::Part;

void check_part(const Part& p, size_t lo, size_t hi, std::string_view msg, int depth) {
  POSTERN_FUZZ_CHECK(depth <= 100);
  POSTERN_FUZZ_CHECK(lo <= p.header_begin && p.header_begin <= p.body_begin && p.body_begin <= p.body_end &&
                     p.body_end <= hi);
  std::string_view body = msg.substr(p.body_begin, p.body_end - p.body_begin);
  uint64_t lf = 0;
  for (char c : body) lf += c == '\n';
  POSTERN_FUZZ_CHECK(lf == p.body_lines);
  size_t cursor = p.body_begin;
  for (const Part& c : p.children) {
    check_part(c, cursor, p.body_end, msg, depth + 1);
    cursor = c.body_end;
  }
  if (p.type == "message" && !p.children.empty()) {
    POSTERN_FUZZ_CHECK(p.children.size() == 1 && p.children[0].header_begin == p.body_begin);
  }
}

// An IMAP rendering: parentheses balance outside strings; quoted strings hold no CR, LF or NUL; a CRLF
// appears only right after a literal's {n}.
void check_imap(std::string_view s) {
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        POSTERN_FUZZ_CHECK(s[i] != '\r' && s[i] != '\n' && s[i] != '\0');
        if (s[i] == '\\') ++i;
      }
      POSTERN_FUZZ_CHECK(i < s.size());
    } else if (c == '{') {
      size_t close = s.find('}', i);
      POSTERN_FUZZ_CHECK(close != std::string_view::npos && close + 3 <= s.size());
      unsigned long long n = 0;
      POSTERN_FUZZ_CHECK(postern::parse_u64(s.substr(i + 1, close - i - 1), n));
      POSTERN_FUZZ_CHECK(s.substr(close + 1, 2) == "\r\n" && close + 3 + n <= s.size());
      i = close + 2 + static_cast<size_t>(n);
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      POSTERN_FUZZ_CHECK(--depth >= 0);
    } else {
      POSTERN_FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
    }
  }
  POSTERN_FUZZ_CHECK(depth == 0);
}

// Part numbers of the first few parts, depth first.
void collect_paths(const Part& p, std::vector<uint32_t>& prefix, std::vector<std::vector<uint32_t>>& out) {
  for (uint32_t i = 0; i < p.children.size() && out.size() < 5; ++i) {
    prefix.push_back(i + 1);
    out.push_back(prefix);
    collect_paths(p.children[i], prefix, out);
    prefix.pop_back();
  }
}

}  // namespace

int postern_fuzz_mime_structure(const uint8_t* data, size_t size) {
  namespace proto = postern::imap::proto;
  namespace mime = postern::mime;
  std::string_view msg(reinterpret_cast<const char*>(data), size);

  Part root = mime::parse(msg);
  POSTERN_FUZZ_CHECK(root.header_begin == 0 && root.body_end == msg.size());
  check_part(root, 0, msg.size(), msg, 0);
  mime::Limits small{3, 8};
  Part limited = mime::parse(msg, small);
  check_part(limited, 0, msg.size(), msg, 0);

  for (bool utf8 : {false, true}) {
    std::string env = proto::envelope(msg, utf8);
    POSTERN_FUZZ_CHECK(env == proto::envelope(msg, utf8));
    check_imap(env);
    for (bool extended : {false, true}) {
      std::string bs = proto::body_structure(msg, extended, utf8);
      POSTERN_FUZZ_CHECK(bs == proto::body_structure(msg, extended, utf8));
      check_imap(bs);
    }
  }

  std::vector<std::vector<uint32_t>> paths{{}};
  std::vector<uint32_t> prefix;
  collect_paths(root, prefix, paths);
  paths.push_back({1, 1, 1});
  using Kind = proto::Section::Kind;
  const Kind kinds[] = {Kind::kAll,  Kind::kHeader,       Kind::kText,
                        Kind::kMime, Kind::kHeaderFields, Kind::kHeaderFieldsNot};
  for (size_t n = 0; n < paths.size(); ++n) {
    const auto& path = paths[n];
    for (size_t k = 0; k < 2; ++k) {  // two of the kinds for each path, all of them over the paths
      proto::Section s;
      s.path = path;
      s.kind = kinds[(n * 2 + k) % 6];
      s.fields = {"Subject", "content-type"};
      std::string bytes = proto::section_bytes(msg, s);
      if (n < 2) POSTERN_FUZZ_CHECK(bytes == proto::section_bytes(msg, s));
      POSTERN_FUZZ_CHECK(bytes.find('\0') == std::string::npos);
      for (size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] == '\n') POSTERN_FUZZ_CHECK(i > 0 && bytes[i - 1] == '\r');
      }
      if (path.empty() && s.kind == Kind::kAll) POSTERN_FUZZ_CHECK(bytes.size() >= msg.size());
    }
    auto bin = proto::binary_bytes(msg, path);
    if (n < 2) {
      auto bin2 = proto::binary_bytes(msg, path);
      POSTERN_FUZZ_CHECK(bin.has_value() == bin2.has_value() && (!bin || *bin == *bin2));
    }
  }

  // Decoders on what the header holds.
  for (const auto& f : mime::split_header(msg.substr(0, root.body_begin))) {
    std::string decoded = mime::decode_header_value(f.value);
    POSTERN_FUZZ_CHECK(postern::valid_utf8(decoded));
    POSTERN_FUZZ_CHECK(postern::valid_utf8(mime::fold_case(decoded)));
    (void)mime::parse_addresses(f.value);
    (void)mime::parse_structured(f.value, true);
    (void)mime::parse_language(f.value);
  }
  POSTERN_FUZZ_CHECK(postern::valid_utf8(mime::to_utf8(msg.substr(0, 256), "iso-8859-1")));
  POSTERN_FUZZ_CHECK(postern::valid_utf8(mime::to_utf8(msg.substr(0, 256), "utf-8")));
  (void)mime::searchable_headers(msg);
  (void)mime::searchable_body(msg);
  for (const char* cte : {"base64", "quoted-printable"}) (void)mime::decode_transfer(msg, cte);
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_mime_structure(data, size);
}
#endif

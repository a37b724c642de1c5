#include "smtp/proto/address.hpp"

#include <arpa/inet.h>

#include "base/strings.hpp"

namespace postern::smtp::proto {
namespace {

constexpr size_t kMaxLocalPart = 64;
constexpr size_t kMaxDomain = 255;
constexpr size_t kMaxPath = 256;

bool is_atext(unsigned char c, bool utf8) {
  if (c >= 0x80) return utf8;
  if (std::isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

bool valid_dot_string(std::string_view s, bool utf8) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '.') {
      if (s[i + 1] == '.') return false;
    } else if (!is_atext(c, utf8)) {
      return false;
    }
  }
  return true;
}

bool valid_address_literal(std::string_view lit) {
  // lit includes the brackets.
  if (lit.size() < 3 || lit.front() != '[' || lit.back() != ']') return false;
  std::string inner(lit.substr(1, lit.size() - 2));
  // Printable ASCII only: a NUL would end the string inet_pton sees, and '<' '>' would end a path early.
  for (unsigned char c : inner)
    if (c < 33 || c > 126 || c == '<' || c == '>') return false;
  unsigned char buf[16];
  if (istarts_with(inner, "IPv6:")) return inet_pton(AF_INET6, inner.c_str() + 5, buf) == 1;
  if (inet_pton(AF_INET, inner.c_str(), buf) == 1) return true;
  // General-address-literal: Standardized-tag ":" 1*dcontent
  size_t colon = inner.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; ++i)
    if (!(std::isalnum(static_cast<unsigned char>(inner[i])) || inner[i] == '-')) return false;
  if (colon + 1 >= inner.size()) return false;
  for (size_t i = colon + 1; i < inner.size(); ++i) {
    auto c = static_cast<unsigned char>(inner[i]);
    if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']') return false;
  }
  return true;
}

bool local_needs_quotes(std::string_view local) {
  return !valid_dot_string(local, true);
}

}  // namespace

bool is_valid_domain(std::string_view domain, bool utf8) {
  if (domain.empty() || domain.size() > kMaxDomain) return false;
  if (domain.front() == '[') return valid_address_literal(domain);
  size_t start = 0;
  while (start <= domain.size()) {
    size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    std::string_view label = domain.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (unsigned char c : label) {
      if (c >= 0x80) {
        if (!utf8) return false;
      } else if (!(std::isalnum(c) || c == '-')) {
        return false;
      }
    }
    start = dot + 1;
    if (dot == domain.size()) break;
  }
  return !utf8 || valid_utf8(domain);
}

std::string Address::str() const {
  if (null) return "";
  std::string out;
  if (local_needs_quotes(local)) {
    out += '"';
    for (char c : local) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  } else {
    out += local;
  }
  if (!domain.empty()) {
    out += '@';
    out += domain;
  }
  return out;
}

ParsedPath parse_path(std::string_view s, bool allow_null, bool utf8) {
  ParsedPath r;
  auto fail = [&](AddressError e) {
    r.error = e;
    return r;
  };
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  bool bracketed = !s.empty() && s.front() == '<';
  size_t i = bracketed ? 1 : 0;

  // Find where the path ends, honouring quoted strings.
  size_t end = i;
  bool in_quotes = false;
  for (; end < s.size(); ++end) {
    char c = s[end];
    if (in_quotes) {
      if (c == '\\' && end + 1 < s.size()) {
        ++end;
      } else if (c == '"') {
        in_quotes = false;
      }
      continue;
    }
    if (c == '"') {
      in_quotes = true;
    } else if (bracketed ? c == '>' : c == ' ') {
      break;
    }
  }
  if (in_quotes || (bracketed && end >= s.size())) return fail(AddressError::kSyntax);
  std::string_view path = s.substr(i, end - i);
  std::string_view rest = s.substr(bracketed ? end + 1 : end);
  if (!rest.empty() && rest.front() != ' ') return fail(AddressError::kSyntax);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  r.rest = rest;
  if (path.size() > kMaxPath) return fail(AddressError::kTooLong);

  if (path.empty()) {
    if (!bracketed || !allow_null)
      return fail(bracketed ? AddressError::kNullNotHere : AddressError::kSyntax);
    r.address.null = true;
    return r;
  }
  // Source route (A-d-l ":"): accepted and ignored, as RFC 5321 4.1.2 and appendix C ask.
  if (path.front() == '@') {
    size_t colon = path.find(':');
    if (colon == std::string_view::npos) return fail(AddressError::kSyntax);
    std::string_view adl = path.substr(0, colon);
    size_t p = 0;
    while (p < adl.size()) {
      if (adl[p] != '@') return fail(AddressError::kSyntax);
      size_t comma = adl.find(',', p);
      if (comma == std::string_view::npos) comma = adl.size();
      if (!is_valid_domain(adl.substr(p + 1, comma - p - 1), utf8)) return fail(AddressError::kSyntax);
      p = comma + 1;
    }
    path = path.substr(colon + 1);
  }

  // Local part: quoted string or dot-string.
  std::string local;
  size_t pos = 0;
  if (!path.empty() && path.front() == '"') {
    pos = 1;
    bool closed = false;
    while (pos < path.size()) {
      auto c = static_cast<unsigned char>(path[pos]);
      if (c == '\\') {
        if (pos + 1 >= path.size()) return fail(AddressError::kSyntax);
        auto q = static_cast<unsigned char>(path[pos + 1]);
        if (q < 32 || q > 126) return fail(AddressError::kSyntax);  // quoted-pairSMTP: %d92 %d32-126
        local += static_cast<char>(q);
        pos += 2;
        continue;
      }
      if (c == '"') {
        closed = true;
        ++pos;
        break;
      }
      if (c >= 0x80) {
        if (!utf8) return fail(AddressError::kNeedsUtf8);
      } else if (c < 32 || c == 127) {
        return fail(AddressError::kSyntax);
      }
      local += static_cast<char>(c);
      ++pos;
    }
    if (!closed) return fail(AddressError::kSyntax);
  } else {
    size_t at = path.find('@');  // atext has no '@': the first one ends the local part
    std::string_view dot_string = path.substr(0, at == std::string_view::npos ? path.size() : at);
    if (!valid_dot_string(dot_string, true)) return fail(AddressError::kSyntax);
    if (!utf8 && !valid_dot_string(dot_string, false)) return fail(AddressError::kNeedsUtf8);
    local = dot_string;
    pos = dot_string.size();
  }
  if (local.size() > kMaxLocalPart) return fail(AddressError::kTooLong);

  std::string_view domain;
  if (pos < path.size()) {
    if (path[pos] != '@') return fail(AddressError::kSyntax);
    domain = path.substr(pos + 1);
    if (!is_valid_domain(domain, true)) return fail(AddressError::kSyntax);
    if (!utf8 && !is_valid_domain(domain, false)) return fail(AddressError::kNeedsUtf8);
  } else if (local.empty()) {
    return fail(AddressError::kSyntax);
  }
  if (utf8 && !valid_utf8(local)) return fail(AddressError::kSyntax);
  r.address.local = std::move(local);
  r.address.domain = std::string(domain);
  for (unsigned char c : r.address.local + r.address.domain)
    if (c >= 0x80) r.address.utf8 = true;
  return r;
}

}  // namespace postern::smtp::proto

#include "smtp/proto/command.hpp"

#include <array>

#include <fmt/format.h>

#include "base/strings.hpp"

namespace postern::smtp::proto {
namespace {

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr std::array kVerbs = std::to_array<VerbName>({
    {"HELO", Verb::kHelo},
    {"EHLO", Verb::kEhlo},
    {"MAIL", Verb::kMail},
    {"RCPT", Verb::kRcpt},
    {"DATA", Verb::kData},
    {"BDAT", Verb::kBdat},
    {"RSET", Verb::kRset},
    {"NOOP", Verb::kNoop},
    {"QUIT", Verb::kQuit},
    {"VRFY", Verb::kVrfy},
    {"EXPN", Verb::kExpn},
    {"HELP", Verb::kHelp},
    {"STARTTLS", Verb::kStarttls},
    {"AUTH", Verb::kAuth},
});

Reply syntax(std::string_view enhanced, std::string_view text) {
  return Reply(501, enhanced, text);
}

bool valid_keyword(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
  return std::isalnum(static_cast<unsigned char>(k[0]));
}

bool valid_esmtp_value(std::string_view v) {
  if (v.empty()) return false;
  for (unsigned char c : v)
    if (c < 33 || c > 126 || c == '=') return false;
  return true;
}

// Splits ESMTP parameters ("KEY[=value] ...") and checks their syntax (RFC 5321 4.1.2), then hands each to
// `take(key, value, has_value)`. Returns the first error reply, or nothing.
template <typename Take>
std::optional<Reply> parse_params(std::string_view s, Take take) {
  for (const auto& param : split_list(s, " ")) {
    std::string_view p = param;
    size_t eq = p.find('=');
    std::string_view key = p.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1);
    if (!valid_keyword(key) || (eq != std::string_view::npos && !valid_esmtp_value(value)))
      return Reply(501, "5.5.4", "Bad parameter syntax");
    if (auto e = take(key, value, eq != std::string_view::npos)) return e;
  }
  return std::nullopt;
}

Reply unsupported(std::string_view key) {
  return Reply(555, "5.5.4", "Unsupported option: " + printable(key, 40));
}

// A DSN parameter given twice or with a bad value (RFC 3461 4: 501, as Postfix).
Reply bad_dsn(std::string_view name) {
  return Reply(501, "5.5.4", fmt::format("Bad {} parameter syntax", name));
}

std::optional<Reply> parse_mail_params(std::string_view s, MailParams& out, const ParseOptions& options) {
  return parse_params(
      s, [&](std::string_view key, std::string_view value, bool has_value) -> std::optional<Reply> {
        if (iequals(key, "SIZE")) {
          unsigned long long n;
          if (!parse_u64(value, n)) return Reply(501, "5.5.4", "Bad SIZE parameter");
          out.size = n;
        } else if (iequals(key, "BODY")) {
          if (iequals(value, "7BIT")) {
            out.body = Body::k7Bit;
          } else if (iequals(value, "8BITMIME")) {
            out.body = Body::k8BitMime;
          } else {
            return Reply(501, "5.5.4", "Unsupported BODY parameter");
          }
        } else if (iequals(key, "SMTPUTF8") && !has_value && options.smtputf8_enabled) {
          out.smtputf8 = true;
        } else if (iequals(key, "RET")) {
          auto ret = parse_ret(value);
          if (out.ret != Ret::kUnspecified || !ret) return bad_dsn("RET");
          out.ret = *ret;
        } else if (iequals(key, "ENVID")) {
          if (out.envid || !(out.envid = parse_envid(value))) return bad_dsn("ENVID");
        } else if (iequals(key, "REQUIRETLS") && !has_value) {
          out.requiretls = true;
        } else {
          return unsupported(key);
        }
        return std::nullopt;
      });
}

std::optional<Reply> parse_rcpt_params(std::string_view s, RcptParams& out) {
  return parse_params(s, [&](std::string_view key, std::string_view value, bool) -> std::optional<Reply> {
    if (iequals(key, "NOTIFY")) {
      auto notify = parse_notify(value);
      if (out.notify || !notify) return bad_dsn("NOTIFY");
      out.notify = *notify;
    } else if (iequals(key, "ORCPT")) {
      if (out.orcpt || !(out.orcpt = parse_orcpt(value))) return bad_dsn("ORCPT");
    } else {
      return unsupported(key);
    }
    return std::nullopt;
  });
}

// "FROM:" / "TO:" followed by optional spaces (Postfix accepts "mail from: user@host").
bool strip_prefix(std::string_view& arg, std::string_view prefix) {
  if (!istarts_with(arg, prefix)) return false;
  arg.remove_prefix(prefix.size());
  return true;
}

}  // namespace

Reply address_error_reply(AddressError error, bool sender) {
  switch (error) {
    case AddressError::kNeedsUtf8:
      return Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
    case AddressError::kTooLong:
      return Reply(501, sender ? "5.1.7" : "5.1.3", "Address too long");
    case AddressError::kNullNotHere:
      return Reply(501, "5.1.3", "Null recipient address not allowed");
    case AddressError::kSyntax:
    case AddressError::kNone:
      break;
  }
  return Reply(501, sender ? "5.1.7" : "5.1.3",
               sender ? "Bad sender address syntax" : "Bad recipient address syntax");
}

ParseResult parse_command(std::string_view line, const ParseOptions& options) {
  ParseResult r;
  Command& c = r.command;
  if (line.find('\0') != std::string_view::npos) {
    r.error = Reply(500, "5.5.2", "Error: NUL character in command");
    return r;
  }
  size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  std::string_view arg = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  c.verb_text = printable(verb, 20);
  for (const auto& v : kVerbs)
    if (iequals(v.name, verb)) c.verb = v.verb;
  c.arg = std::string(trim(arg));

  switch (c.verb) {
    case Verb::kUnknown:
      r.error = Reply(500, "5.5.2", "Error: command not recognized");  // RFC 5321 4.2.4
      break;
    case Verb::kHelo:
    case Verb::kEhlo:
      if (c.arg.empty())
        r.error = syntax("5.5.4",
                         std::string("Syntax: ") + (c.verb == Verb::kHelo ? "HELO" : "EHLO") + " hostname");
      break;
    case Verb::kMail: {
      if (!strip_prefix(arg, "FROM:")) {
        r.error = syntax("5.5.4", "Syntax: MAIL FROM:<address>");
        break;
      }
      // Parse parameters first: SMTPUTF8 decides whether the path may hold UTF-8.
      ParsedPath probe = parse_path(arg, true, options.smtputf8_enabled);
      if (probe.error != AddressError::kNone) {
        r.error = address_error_reply(probe.error, true);
        break;
      }
      if (auto e = parse_mail_params(probe.rest, c.mail, options)) {
        r.error = *e;
        break;
      }
      ParsedPath path = parse_path(arg, true, c.mail.smtputf8);
      if (path.error != AddressError::kNone) {
        r.error = address_error_reply(path.error, true);
        break;
      }
      c.address = std::move(path.address);
      break;
    }
    case Verb::kRcpt: {
      if (!strip_prefix(arg, "TO:")) {
        r.error = syntax("5.5.4", "Syntax: RCPT TO:<address>");
        break;
      }
      ParsedPath path = parse_path(arg, false, options.smtputf8_enabled);
      if (path.error != AddressError::kNone) {
        r.error = address_error_reply(path.error, false);
        break;
      }
      if (auto e = parse_rcpt_params(path.rest, c.rcpt)) {
        r.error = *e;
        break;
      }
      c.address = std::move(path.address);
      break;
    }
    case Verb::kBdat: {
      auto parts = split_list(arg, " ");
      unsigned long long n = 0;
      if (parts.empty() || parts.size() > 2 || !parse_u64(parts[0], n) ||
          (parts.size() == 2 && !iequals(parts[1], "LAST"))) {
        r.error = syntax("5.5.4", "Syntax: BDAT size [LAST]");
        break;
      }
      c.chunk_size = n;
      c.last = parts.size() == 2;
      break;
    }
    case Verb::kData:
    case Verb::kRset:
    case Verb::kQuit:
    case Verb::kStarttls:
      if (!c.arg.empty()) r.error = syntax("5.5.4", "Syntax: " + to_lower(verb) + " takes no argument");
      break;
    case Verb::kVrfy:
    case Verb::kExpn:
      if (c.arg.empty())
        r.error =
            syntax("5.5.4", "Syntax: " + std::string(c.verb == Verb::kVrfy ? "VRFY" : "EXPN") + " address");
      break;
    case Verb::kNoop:
    case Verb::kHelp:
    case Verb::kAuth:
      break;
  }
  return r;
}

}  // namespace postern::smtp::proto

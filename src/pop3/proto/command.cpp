#include "pop3/proto/command.hpp"

#include <algorithm>

#include "base/strings.hpp"

namespace postern::pop3::proto {

constexpr size_t kMaxArg = 255;

bool parse_command(std::string_view line, Command& out) {
  out = Command{};
  size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  if (verb.size() < 3 || verb.size() > 4) return false;
  for (char c : verb) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
    out.verb += static_cast<char>(c >= 'a' ? c - 32 : c);
  }
  if (sp == std::string_view::npos) return true;
  std::string_view rest = line.substr(sp + 1);
  if (out.verb == "PASS") {
    // Passwords may contain spaces (RFC 1939 7 allows it; clients send them).
    out.args.emplace_back(rest);
    return true;
  }
  for (auto a : split(rest, ' ')) {
    if (a.empty()) continue;
    // AUTH's initial response (RFC 5034 4) may be longer than other arguments.
    if (a.size() > kMaxArg && !(out.verb == "AUTH" && out.args.size() == 1)) return false;
    out.args.emplace_back(a);
  }
  return true;
}

unsigned parse_msg_number(std::string_view arg) {
  unsigned long long n = 0;
  if (arg.empty() || arg.size() > 10 || arg[0] == '0' || !parse_u64(arg, n) || n > 0xffffffffULL) return 0;
  return static_cast<unsigned>(n);
}

}  // namespace postern::pop3::proto

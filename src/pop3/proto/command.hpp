// pop3/proto/command.hpp: one POP3 command line (RFC 1939 3, RFC 2449 3): a keyword of 3-4 letters and up to
// two (USER/PASS: one, spaces kept) arguments. Pure; no I/O.
// Security: untrusted input; lines are already bounded by the line reader; arguments of at most 255 bytes
// each (RFC 2449), except PASS and AUTH's initial response. Fuzzed by fuzz/pop3_command.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postern::pop3::proto {

struct Command {
  std::string verb;               // upper case
  std::vector<std::string> args;  // PASS: the whole rest of the line as one argument
};

// Nothing when the line is not a command (empty, a keyword that is not 3-4 letters, an overlong argument).
bool parse_command(std::string_view line, Command& out);
// A message number argument ("1".."4294967295"); 0 when invalid.
unsigned parse_msg_number(std::string_view arg);

}  // namespace postern::pop3::proto

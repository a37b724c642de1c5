// smtp/proto/command.hpp: parses one SMTP command line (RFC 5321 4.1, RFC 1870, 6152, 6531, 3030, 3461) into
// a typed Command or the reply that refuses it. Pure; no I/O. Security: untrusted input; the line has already
// been bounded by LineBuffer. Fuzzed by fuzz/smtp_command.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/proto/address.hpp"
#include "smtp/proto/dsn_params.hpp"
#include "smtp/proto/reply.hpp"

namespace postern::smtp::proto {

enum class Verb {
  kHelo,
  kEhlo,
  kMail,
  kRcpt,
  kData,
  kBdat,
  kRset,
  kNoop,
  kQuit,
  kVrfy,
  kExpn,
  kHelp,
  kStarttls,
  kAuth,
  kUnknown
};

enum class Body { kDefault, k7Bit, k8BitMime, kBinaryMime };

struct MailParams {
  std::optional<uint64_t> size;      // SIZE=
  Body body = Body::kDefault;        // BODY=
  bool smtputf8 = false;             // SMTPUTF8
  Ret ret = Ret::kUnspecified;       // RET= (RFC 3461)
  std::optional<std::string> envid;  // ENVID=, decoded
  bool requiretls = false;           // REQUIRETLS (RFC 8689)
};

struct RcptParams {
  uint8_t notify = 0;                      // NOTIFY= (NotifyBits), 0 when absent
  std::optional<OriginalRecipient> orcpt;  // ORCPT=, decoded
};

struct Command {
  Verb verb = Verb::kUnknown;
  std::string verb_text;    // as the client wrote it, for logs
  std::string arg;          // the text after the verb (HELO domain, VRFY argument, AUTH data, ...)
  Address address;          // MAIL / RCPT
  MailParams mail;          // MAIL
  RcptParams rcpt;          // RCPT
  uint64_t chunk_size = 0;  // BDAT
  bool last = false;        // BDAT ... LAST
};

// What the parser needs to know about the session.
struct ParseOptions {
  bool smtputf8_enabled = true;
};

struct ParseResult {
  Command command;
  std::optional<Reply> error;  // set when the line is refused; command.verb still tells what was tried
};

ParseResult parse_command(std::string_view line, const ParseOptions& options);

// Reply for an address that failed to parse (RFC 3463 codes: 5.1.7 sender, 5.1.3 recipient, 5.6.7 UTF-8).
Reply address_error_reply(AddressError error, bool sender);

}  // namespace postern::smtp::proto

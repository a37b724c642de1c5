// queue/queue_file.hpp: the queue-file codec: one message with its envelope and per-recipient state, as
// stored under queue_directory/<state>/<queue id>. Pure: bytes in, bytes out.
//
// Format (version 1). A first line "POSTERN-QUEUE 1\n", then records, each written
//     <type><length>:<value>\n
// where <type> is one ASCII letter, <length> the decimal byte count of <value> (no leading zeros) and <value>
// any bytes. Upper-case types are understood by every reader; a reader refuses a file with an upper-case type
// it does not know. Lower-case types are optional additions that older readers skip, so that later versions
// can add data (next attempt time, DSN ENVID/ORCPT, ...) without a format change.
//   I queue id            once     T arrival time      once, microseconds since the Unix epoch
//   S sender              once     (empty: the null sender <>)
//   C client              optional "host[address]" of the submitting client, for logs
//   Z message size        once     bytes of the M record's value
//   R / D / F recipient   one or more: R still to deliver, D delivered, F failed for good
//   W reason              optional, after a recipient: why its last delivery attempt was deferred
//   M message             once, after the envelope: the message (LF line ends, as received)
// Optional records of the DSN extension (RFC 3461), decoded from xtext:
//   e ENVID               at most once
//   r RET                 at most once: FULL or HDRS
//   y NOTIFY              at most once after a recipient: NEVER, or e.g. SUCCESS,FAILURE,DELAY
//   o ORCPT               at most once after a recipient: <address type>;<address>
// Optional records of the queue manager:
//   w delay warned        at most once, empty: the sender was told the message is delayed
//                         (delay_warning_time)
// Optional records of REQUIRETLS (RFC 8689):
//   t REQUIRETLS          at most once, empty: MAIL FROM had REQUIRETLS
//   E end                 once, empty, last: a file without it is incomplete
// A recipient's state changes in place by overwriting the type byte of its record (R -> D or F) and fsync;
// any other change writes a new file and renames it over the old one.
// Security: queue files are written by Postern only, but decode() must survive any bytes (a truncated or
// damaged file after a crash or a full disk): it returns an error, never reads past the input, and allocates
// at most what the input holds. Fuzzed by fuzz/queue_file.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "smtp/proto/dsn_params.hpp"

namespace postern::queue {

enum class RecipientState : char { kPending = 'R', kDelivered = 'D', kFailed = 'F' };

// What the client asked of delivery status notifications for one recipient (RFC 3461 NOTIFY, ORCPT).
struct DsnRequest {
  uint8_t notify = 0;  // smtp::proto::NotifyBits; 0: not given
  std::optional<smtp::proto::OriginalRecipient> orcpt;

  bool operator==(const DsnRequest&) const = default;
};

struct QueuedRecipient {
  std::string address;
  RecipientState state = RecipientState::kPending;
  std::string reason;  // of the last deferral; empty when none
  DsnRequest dsn;

  bool operator==(const QueuedRecipient&) const = default;
};

struct QueueFile {
  std::string queue_id;
  std::chrono::system_clock::time_point arrival;  // kept to the microsecond
  std::string sender;                             // empty: <>
  std::string client;
  std::string envid;                                      // RFC 3461 ENVID; empty: none
  smtp::proto::Ret ret = smtp::proto::Ret::kUnspecified;  // RFC 3461 RET
  std::vector<QueuedRecipient> recipients;
  bool delay_warned = false;  // a delay warning was sent (once per message, as Postfix)
  bool requiretls = false;    // RFC 8689 REQUIRETLS
  uint64_t size = 0;          // of the message, set by decode

  bool operator==(const QueueFile&) const = default;
};

constexpr std::string_view kQueueFileMagic = "POSTERN-QUEUE 1\n";
constexpr std::string_view kQueueFileTrailer = "\nE0:\n";

// Everything before the message: the magic line, the envelope records and the M record's "M<size>:". The
// file is encode_head(q, message.size()) + message + kQueueFileTrailer.
std::string encode_head(const QueueFile& q, uint64_t message_size);
std::string encode(const QueueFile& q, std::string_view message);

struct Decoded {
  QueueFile envelope;
  std::string_view message;  // into the decoded bytes; empty when only the envelope was asked for
};

// `envelope_only`: stop at the M record (the bytes may end anywhere after its "M<size>:"), for mailq.
Result<Decoded> decode(std::string_view bytes, bool envelope_only = false);

}  // namespace postern::queue

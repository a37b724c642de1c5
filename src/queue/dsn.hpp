// queue/dsn.hpp: delivery status notifications: who gets one (RFC 3461 4.1 NOTIFY, as Postfix applies it) and
// the message itself (RFC 3464 message/delivery-status inside an RFC 6522 multipart/report, status codes of
// RFC 3463), shaped like Postfix's bounces so that users find what they know: From MAILER-DAEMON ("Mail
// Delivery System"), "Undelivered Mail Returned to Sender", the returned message or its header within
// bounce_size_limit. Pure: inputs in, message bytes (LF line ends, as Postern stores mail) out; the queue
// manager decides when, and sends the result from the null sender.
// Security: diagnostics come from remote servers and the returned message from anyone: control characters and
// 8-bit bytes never reach the report's fields, field values are capped and folded so that no line the
// composer writes exceeds 998 bytes, and the MIME boundary is chosen so that it does not occur in the
// message.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/proto/dsn_params.hpp"

namespace postern::queue {

// RFC 3464 2.3.3.
enum class DsnAction { kFailed, kDelayed, kDelivered, kRelayed, kExpanded };
std::string_view action_name(DsnAction action);  // "failed", ...

// The three reports Postfix sends: a bounce, a delay warning, a success report.
enum class DsnKind { kFailure, kDelay, kSuccess };
DsnKind kind_of(DsnAction action);

// Whether the envelope sender gets a DSN with `action` about a recipient that asked `notify` (NotifyBits, 0
// when it gave no NOTIFY). Never for the null sender (no bounce for a bounce) nor NOTIFY=NEVER; without
// NOTIFY failures are reported, and delays when `delay_warnings` (delay_warning_time is set), as RFC 3461 4.1
// leaves to the MTA; with NOTIFY exactly what it lists (success covers delivered, relayed and expanded).
bool wants_dsn(std::string_view sender, uint8_t notify, DsnAction action, bool delay_warnings);

// One recipient a DSN reports on.
struct DsnRecipient {
  std::string final_recipient;                             // the address delivery was tried to
  std::optional<smtp::proto::OriginalRecipient> original;  // its ORCPT
  DsnAction action = DsnAction::kFailed;
  std::string status;       // RFC 3463 "5.1.1"; empty: x.0.0 of the action's class
  std::string remote_mta;   // DNS name of the host that answered; empty: none (local delivery)
  std::string diagnostic;   // "smtp; 550 5.1.1 <b@y.example>: no such user"; empty: none
  std::string explanation;  // for people: "host mx.y.example[192.0.2.1] said: 550 5.1.1 ... (in reply to RCPT
                            // TO command)"; empty: the diagnostic's text
  std::chrono::system_clock::time_point last_attempt{};      // the epoch: not known
  std::chrono::system_clock::time_point will_retry_until{};  // delays only; the epoch: not known
};

struct DsnInput {
  std::string reporting_mta;  // myhostname
  std::string queue_id;       // of the message reported on
  std::chrono::system_clock::time_point arrival;
  std::string sender;  // its envelope sender: the DSN is addressed to it
  std::string envid;   // RFC 3461 ENVID, decoded; empty: none
  smtp::proto::Ret ret = smtp::proto::Ret::kUnspecified;
  std::vector<DsnRecipient> recipients;  // at least one, all of one DsnKind
  std::chrono::system_clock::time_point now;
  uint64_t size_limit = 50000;  // bounce_size_limit: a larger message is returned as its header only
};

// The complete DSN message. `original` is the message as stored (LF line ends). A failure report returns it
// whole unless RET=HDRS or it exceeds size_limit; delay and success reports return its header only.
std::string compose_dsn(const DsnInput& in, std::string_view original);

}  // namespace postern::queue

// queue/dsn.cpp: DSN policy and composition (see dsn.hpp).
// Security: every value that reaches a header or report field goes through field_text().
#include "queue/dsn.hpp"

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

#include "base/calendar.hpp"

namespace postern::queue {
namespace {

using smtp::proto::Ret;

constexpr size_t kFoldWidth = 78;
// A field value longer than this is cut: with its name the line stays far below 998 bytes even unfolded.
constexpr size_t kMaxFieldValue = 900;

bool is_epoch(std::chrono::system_clock::time_point t) {
  return t.time_since_epoch().count() == 0;
}

// Printable US-ASCII only: control characters (CR, LF, TAB, ...) become spaces, 8-bit bytes "?".
std::string field_text(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, kMaxFieldValue)) out += c < 32 || c == 127 ? ' ' : c > 127 ? '?' : c;
  return out;
}

// `head` + `value`, folded at spaces into lines of at most kFoldWidth where the words allow it, continuation
// lines indented by four spaces (as Postfix folds Diagnostic-Code), ending in LF.
void put_folded(std::string& out, std::string_view head, std::string_view value) {
  std::string text = field_text(value);
  size_t line_start = out.size();
  out += head;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos + 1);
    if (end == std::string::npos) end = text.size();
    std::string_view word = std::string_view(text).substr(pos, end - pos);  // with its leading space
    if (out.size() - line_start + word.size() > kFoldWidth && word.size() > 1 && word[0] == ' ' &&
        out.size() - line_start > 4) {
      out += "\n   ";
      line_start = out.size() - 3;
    }
    out += word;
    pos = end;
  }
  out += '\n';
}

void put_field(std::string& out, std::string_view name, std::string_view value) {
  put_folded(out, std::string(name) + ": ", value);
}

struct KindText {
  std::string_view subject;
  std::string_view description;          // of the returned message part
  std::string_view headers_description;  // of the returned header part
  std::string_view default_status;
  char id_letter;
};

const KindText& text_of(DsnKind kind) {
  static const KindText kFailure{"Undelivered Mail Returned to Sender", "Undelivered Message",
                                 "Undelivered Message Headers", "5.0.0", 'F'};
  static const KindText kDelay{"Delayed Mail (still being retried)", "Delayed Message",
                               "Delayed Message Headers", "4.0.0", 'D'};
  static const KindText kSuccess{"Successful Mail Delivery Report", "Delivered Message",
                                 "Delivered Message Headers", "2.0.0", 'S'};
  switch (kind) {
    case DsnKind::kFailure:
      return kFailure;
    case DsnKind::kDelay:
      return kDelay;
    case DsnKind::kSuccess:
      break;
  }
  return kSuccess;
}

// The human-readable first part: what happened, then one paragraph per recipient.
std::string notification(const DsnInput& in, DsnKind kind, bool whole_message) {
  std::string out = fmt::format("This is the mail system at host {}.\n\n", field_text(in.reporting_mta));
  switch (kind) {
    case DsnKind::kFailure:
      out += fmt::format(
          "Your message could not be delivered to one or more of its recipients, for the\n"
          "reasons given below. {} is attached.\n\n"
          "If you need help, write to the postmaster of this system and include this\n"
          "report. You may remove your own text from the returned message first.\n",
          whole_message ? "The message" : "The header of the message");
      break;
    case DsnKind::kDelay: {
      auto until = in.recipients.front().will_retry_until;
      out +=
          "####################################################################\n"
          "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
          "####################################################################\n\n";
      out += fmt::format(
          "Your message has not yet been delivered to the recipients listed below.\n"
          "It arrived on {}.\n",
          rfc5322_date(in.arrival));
      out += is_epoch(until) ? std::string("Delivery is still being tried.\n")
                             : fmt::format("Delivery will be tried again until {}.\n", rfc5322_date(until));
      out += "You will be told if it fails for good.\n";
      break;
    }
    case DsnKind::kSuccess:
      out +=
          "Your message was delivered to the recipients listed below. Where it was\n"
          "delivered into a mailbox, this is the last notice you will get about it;\n"
          "where it was passed on to a system without delivery reports, that system\n"
          "may still send notices of its own.\n";
      break;
  }
  out += "\n                   The mail system\n";
  for (const auto& r : in.recipients) {
    std::string head = "<" + r.final_recipient + ">";
    if (r.original && r.original->address != r.final_recipient)
      head += " (expanded from <" + r.original->address + ">)";
    std::string_view why = r.explanation;
    if (why.empty()) {
      why = std::string_view(r.diagnostic)
                .substr(r.diagnostic.find(';') + 1);  // the text without its "smtp;" type
      while (!why.empty() && why.front() == ' ') why.remove_prefix(1);
    }
    if (why.empty()) why = action_name(r.action);
    out += '\n';
    put_folded(out, "", head + ": " + std::string(why));
  }
  return out;
}

std::string delivery_status(const DsnInput& in, DsnKind kind) {
  std::string out;
  if (!in.envid.empty()) put_field(out, "Original-Envelope-Id", in.envid);
  put_field(out, "Reporting-MTA", "dns; " + in.reporting_mta);
  put_field(out, "X-Postern-Queue-ID", in.queue_id);
  put_field(out, "X-Postern-Sender", "rfc822; " + in.sender);
  put_field(out, "Arrival-Date", rfc5322_date(in.arrival));
  for (const auto& r : in.recipients) {
    out += '\n';
    put_field(out, "Final-Recipient", "rfc822; " + r.final_recipient);
    if (r.original) put_field(out, "Original-Recipient", r.original->type + ";" + r.original->address);
    put_field(out, "Action", action_name(r.action));
    put_field(out, "Status", r.status.empty() ? text_of(kind).default_status : r.status);
    if (!r.remote_mta.empty()) put_field(out, "Remote-MTA", "dns; " + r.remote_mta);
    if (!r.diagnostic.empty()) put_field(out, "Diagnostic-Code", r.diagnostic);
    if (!is_epoch(r.last_attempt)) put_field(out, "Last-Attempt-Date", rfc5322_date(r.last_attempt));
    if (r.action == DsnAction::kDelayed && !is_epoch(r.will_retry_until))
      put_field(out, "Will-Retry-Until", rfc5322_date(r.will_retry_until));
  }
  return out;
}

// The header of a message: up to and without the empty line that ends it, cut after the last whole line
// within `limit` bytes.
std::string_view header_of(std::string_view message, uint64_t limit) {
  std::string_view h = message;
  if (h.starts_with('\n')) return {};
  if (size_t blank = h.find("\n\n"); blank != std::string_view::npos) h = h.substr(0, blank + 1);
  if (h.size() > limit) {
    size_t cut = limit == 0 ? std::string_view::npos : h.rfind('\n', limit - 1);
    h = cut == std::string_view::npos ? std::string_view() : h.substr(0, cut + 1);
  }
  return h;
}

bool has_8bit(std::string_view s) {
  for (unsigned char c : s)
    if (c > 127) return true;
  return false;
}

}  // namespace

std::string_view action_name(DsnAction action) {
  switch (action) {
    case DsnAction::kFailed:
      return "failed";
    case DsnAction::kDelayed:
      return "delayed";
    case DsnAction::kDelivered:
      return "delivered";
    case DsnAction::kRelayed:
      return "relayed";
    case DsnAction::kExpanded:
      break;
  }
  return "expanded";
}

DsnKind kind_of(DsnAction action) {
  switch (action) {
    case DsnAction::kFailed:
      return DsnKind::kFailure;
    case DsnAction::kDelayed:
      return DsnKind::kDelay;
    case DsnAction::kDelivered:
    case DsnAction::kRelayed:
    case DsnAction::kExpanded:
      break;
  }
  return DsnKind::kSuccess;
}

bool wants_dsn(std::string_view sender, uint8_t notify, DsnAction action, bool delay_warnings) {
  using namespace smtp::proto;
  if (sender.empty() || (notify & kNotifyNever)) return false;
  switch (kind_of(action)) {
    case DsnKind::kFailure:
      return notify == 0 || (notify & kNotifyFailure);
    case DsnKind::kDelay:
      return notify == 0 ? delay_warnings : (notify & kNotifyDelay) != 0;
    case DsnKind::kSuccess:
      break;
  }
  return (notify & kNotifySuccess) != 0;
}

std::string compose_dsn(const DsnInput& in, std::string_view original) {
  assert(!in.recipients.empty());
  DsnKind kind = kind_of(in.recipients.front().action);
  assert(std::all_of(in.recipients.begin(), in.recipients.end(),
                     [kind](const DsnRecipient& r) { return kind_of(r.action) == kind; }));
  const KindText& text = text_of(kind);
  bool whole = kind == DsnKind::kFailure && in.ret != Ret::kHdrs && original.size() <= in.size_limit;
  std::string_view returned = whole ? original : header_of(original, in.size_limit);
  std::string_view encoding = has_8bit(returned) ? "8bit" : "7bit";
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(in.now.time_since_epoch()).count();
  std::string boundary = fmt::format("{}.{}/{}", in.queue_id, seconds, field_text(in.reporting_mta));
  while (returned.find(boundary) != std::string_view::npos) boundary += ".x";

  std::string out;
  put_field(out, "Date", rfc5322_date(in.now));
  put_field(out, "From", "MAILER-DAEMON@" + in.reporting_mta + " (Mail Delivery System)");
  put_field(out, "Subject", text.subject);
  put_field(out, "To", in.sender);
  put_field(out, "Auto-Submitted", "auto-replied");
  put_field(out, "MIME-Version", "1.0");
  out += fmt::format("Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{}\"\n",
                     boundary);
  put_field(out, "Content-Transfer-Encoding", encoding);
  put_field(out, "Message-Id",
            fmt::format("<{}.{}.{}@{}>", seconds, in.queue_id, text.id_letter, in.reporting_mta));
  out += "\nThis is a MIME-encapsulated message.\n\n";

  out += fmt::format(
      "--{}\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n", boundary);
  out += notification(in, kind, whole);
  out += fmt::format(
      "\n--{}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n", boundary);
  out += delivery_status(in, kind);
  out += fmt::format("\n--{}\nContent-Description: {}\nContent-Type: {}\nContent-Transfer-Encoding: {}\n\n",
                     boundary, whole ? text.description : text.headers_description,
                     whole ? "message/rfc822" : "text/rfc822-headers", encoding);
  out += returned;
  if (!returned.empty() && !returned.ends_with('\n')) out += '\n';
  out += fmt::format("\n--{}--\n", boundary);
  return out;
}

}  // namespace postern::queue

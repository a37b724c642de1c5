// queue/queue_file.cpp: the queue-file codec (format in queue_file.hpp).
// Security: decode() checks every length against the bytes left before using it.
#include "queue/queue_file.hpp"

#include <fmt/format.h>

#include "base/strings.hpp"

namespace postern::queue {
namespace {

// The latest arrival time system_clock can hold (its ticks are nanoseconds: year 2262).
constexpr unsigned long long kMaxMicros = static_cast<unsigned long long>(
    std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::duration::max())
        .count());

constexpr size_t kMaxLengthDigits = 19;

void put(std::string& out, char type, std::string_view value) {
  out += type;
  out += std::to_string(value.size());
  out += ':';
  out += value;
  out += '\n';
}

long long micros(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string encode_head(const QueueFile& q, uint64_t message_size) {
  std::string out(kQueueFileMagic);
  put(out, 'I', q.queue_id);
  put(out, 'T', std::to_string(micros(q.arrival)));
  put(out, 'S', q.sender);
  if (!q.client.empty()) put(out, 'C', q.client);
  if (!q.envid.empty()) put(out, 'e', q.envid);
  if (q.ret != smtp::proto::Ret::kUnspecified) put(out, 'r', smtp::proto::ret_text(q.ret));
  if (q.delay_warned) put(out, 'w', "");
  if (q.requiretls) put(out, 't', "");
  put(out, 'Z', std::to_string(message_size));
  for (const auto& r : q.recipients) {
    put(out, static_cast<char>(r.state), r.address);
    if (!r.reason.empty()) put(out, 'W', r.reason);
    if (r.dsn.notify) put(out, 'y', smtp::proto::notify_text(r.dsn.notify));
    if (r.dsn.orcpt) put(out, 'o', r.dsn.orcpt->type + ";" + r.dsn.orcpt->address);
  }
  out += 'M';
  out += std::to_string(message_size);
  out += ':';
  return out;
}

std::string encode(const QueueFile& q, std::string_view message) {
  std::string out = encode_head(q, message.size());
  out += message;
  out += kQueueFileTrailer;
  return out;
}

Result<Decoded> decode(std::string_view bytes, bool envelope_only) {
  auto fail = [](std::string_view what, size_t offset) -> Result<Decoded> {
    return Error{fmt::format("damaged queue file: {} at byte {}", what, offset)};
  };
  if (bytes.substr(0, kQueueFileMagic.size()) != kQueueFileMagic) return fail("not a Postern queue file", 0);
  Decoded d;
  QueueFile& q = d.envelope;
  bool have_id = false, have_time = false, have_sender = false, have_size = false, have_envid = false,
       have_ret = false;
  size_t pos = kQueueFileMagic.size();
  while (true) {
    if (pos >= bytes.size()) return fail("truncated", pos);
    size_t start = pos;
    char type = bytes[pos++];
    size_t colon = bytes.find(':', pos);
    if (colon == std::string_view::npos || colon == pos || colon - pos > kMaxLengthDigits)
      return fail("bad record length", start);
    std::string_view digits = bytes.substr(pos, colon - pos);
    unsigned long long len;
    if (!parse_u64(digits, len) || (digits.size() > 1 && digits[0] == '0'))
      return fail("bad record length", start);
    pos = colon + 1;
    if (type == 'M') {
      if (!have_id || !have_time || !have_sender || !have_size || q.recipients.empty())
        return fail("envelope incomplete before the message", start);
      if (len != q.size) return fail("message size differs from its Z record", start);
      if (envelope_only) return d;
      if (len > bytes.size() - pos) return fail("truncated message", start);
      d.message = bytes.substr(pos, len);
      pos += len;
      if (bytes.substr(pos) != kQueueFileTrailer) return fail("no end record after the message", pos);
      return d;
    }
    if (len > bytes.size() - pos || bytes.size() - pos - len < 1 || bytes[pos + len] != '\n')
      return fail("truncated record", start);
    std::string_view value = bytes.substr(pos, len);
    pos += len + 1;
    auto once = [&](bool& seen) {
      bool first = !seen;
      seen = true;
      return first;
    };
    unsigned long long n;
    switch (type) {
      case 'I':
        if (!once(have_id) || value.empty()) return fail("bad queue id record", start);
        q.queue_id = value;
        break;
      case 'T':
        if (!once(have_time) || !parse_u64(value, n) || n > kMaxMicros) return fail("bad time record", start);
        q.arrival = std::chrono::system_clock::time_point(std::chrono::microseconds(n));
        break;
      case 'S':
        if (!once(have_sender)) return fail("second sender record", start);
        q.sender = value;
        break;
      case 'C':
        q.client = value;
        break;
      case 'Z':
        if (!once(have_size) || !parse_u64(value, n)) return fail("bad size record", start);
        q.size = n;
        break;
      case 'R':
      case 'D':
      case 'F':
        if (value.empty()) return fail("empty recipient", start);
        q.recipients.push_back({std::string(value), static_cast<RecipientState>(type), {}, {}});
        break;
      case 'W':
        if (q.recipients.empty() || !q.recipients.back().reason.empty() || value.empty())
          return fail("reason without a recipient", start);
        q.recipients.back().reason = value;
        break;
      case 'e':
        if (!once(have_envid) || value.empty()) return fail("bad ENVID record", start);
        q.envid = value;
        break;
      case 'r': {
        auto ret = smtp::proto::parse_ret(value);
        if (!once(have_ret) || !ret) return fail("bad RET record", start);
        q.ret = *ret;
        break;
      }
      case 'w':
        if (q.delay_warned || !value.empty()) return fail("bad delay warning record", start);
        q.delay_warned = true;
        break;
      case 't':
        if (q.requiretls || !value.empty()) return fail("bad REQUIRETLS record", start);
        q.requiretls = true;
        break;
      case 'y': {
        auto notify = smtp::proto::parse_notify(value);
        if (q.recipients.empty() || q.recipients.back().dsn.notify || !notify)
          return fail("bad NOTIFY record", start);
        q.recipients.back().dsn.notify = *notify;
        break;
      }
      case 'o': {
        size_t semi = value.find(';');
        if (q.recipients.empty() || q.recipients.back().dsn.orcpt || semi == 0 || semi == value.npos ||
            semi + 1 == value.size())
          return fail("bad ORCPT record", start);
        q.recipients.back().dsn.orcpt = {std::string(value.substr(0, semi)),
                                         std::string(value.substr(semi + 1))};
        break;
      }
      default:
        if (type < 'a' || type > 'z') return fail("unknown record type", start);
        break;  // an optional record of a later version
    }
  }
}

}  // namespace postern::queue

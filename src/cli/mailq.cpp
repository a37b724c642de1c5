// cli/mailq.cpp: `postern -c DIR mailq`, Postfix's mailq (postqueue -p): every queued message with its id,
// size, arrival time, sender and the recipients still to deliver, each after the reason of its last deferral.
// Status marks after the id as Postfix's: '*' active, '!' on hold. The layout is Postfix's, column for
// column. Security: reads queue files only; a damaged one is named on stderr and skipped.
#include <ctime>

#include <fmt/format.h>

#include "base/calendar.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "queue/spool.hpp"

namespace postern::cli {
namespace {

// "Thu Mar  4 12:34:56 ", the first 20 characters of asctime() as Postfix prints them.
std::string arrival_text(std::chrono::system_clock::time_point t) {
  return local_time_text(t, "%a %b %e %H:%M:%S ");
}

}  // namespace

int cmd_mailq(const std::string& dir, const Args& args) {
  if (!args.empty()) {
    fmt::print(stderr, "usage: postern -c DIR mailq\n");
    return kExUsage;
  }
  auto cfg = config::Config::load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return kExConfig;
  }
  std::vector<std::string> problems;
  auto messages = queue::Spool(cfg->get_path("queue_directory")).list(problems);
  for (const auto& p : problems) fmt::print(stderr, "postern: warning: {}\n", p);
  if (messages.empty()) {
    fmt::print("Mail queue is empty\n");
    return 0;
  }
  // Postfix's columns (postqueue/showq_compat.c, short ids): "%-11s %7s %-20s %s", so that the sender and
  // the recipients start in column 41 (the header's "--Size--" overflows its column by one, as there).
  fmt::print("{:<11} {:>7} {:<20} {}\n", "-Queue ID-", "--Size--", "----Arrival Time----",
             "-Sender/Recipient-------");
  uint64_t bytes = 0;
  for (const auto& m : messages) {
    const auto& q = m.envelope;
    const char* mark = m.state == queue::QueueState::kActive ? "*"
                       : m.state == queue::QueueState::kHold ? "!"
                                                             : "";
    fmt::print("{:<11} {:>7} {:<20} {}\n", q.queue_id + mark, q.size, arrival_text(q.arrival),
               q.sender.empty() ? "MAILER-DAEMON" : q.sender);
    // A reason line, right-aligned to column 78, whenever the reason differs from the previous recipient's.
    std::string_view shown;
    for (const auto& r : q.recipients) {
      if (r.state != queue::RecipientState::kPending) continue;
      if (r.reason != shown) {
        shown = r.reason;
        std::string_view text = shown.empty() ? "reason unavailable" : shown;
        fmt::print("{:>{}}({})\n", "", text.size() < 76 ? 76 - text.size() : 0, text);
      }
      fmt::print("{:41}{}\n", "", r.address);
    }
    fmt::print("\n");
    bytes += q.size;
  }
  fmt::print("-- {} Kbytes in {} Request{}.\n", bytes / 1024, messages.size(),
             messages.size() == 1 ? "" : "s");
  return 0;
}

}  // namespace postern::cli

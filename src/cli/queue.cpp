// cli/queue.cpp: `postern -c DIR queue flush|delete|hold|release ID...|ALL`, Postfix's postqueue -f/-i and
// postsuper -d/-h/-H: steer the outbound queue by moving queue files between the state directories of
// queue/spool.hpp (durable renames; files keep their modes) and waking the running queue manager (SIGUSR1 to
// the pid in queue_directory/pid/master.pid).
// Security: run by root or the queue's owner; ids from the command line are checked by valid_queue_id()
// before they name a file, so that no argument reaches outside queue_directory.
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "queue/spool.hpp"

namespace postern::cli {
namespace {

using queue::QueueState;

constexpr char kUsage[] =
    "usage: postern -c DIR queue flush [ID...]          deliver deferred mail now (postqueue -f, -i ID)\n"
    "       postern -c DIR queue delete ID...|ALL       remove messages (postsuper -d)\n"
    "       postern -c DIR queue hold ID...|ALL         put messages on hold (postsuper -h)\n"
    "       postern -c DIR queue release ID...|ALL      release held messages, due at once (postsuper -H)\n";

// One verb: the states it takes messages from, where it puts them (nullopt: removes them) and the words of
// its summary line, as postsuper's ("Deleted: 2 messages").
struct Verb {
  const char* name;
  std::vector<QueueState> from;
  std::optional<QueueState> to;
  const char* done;
};

const Verb kVerbs[] = {
    {"delete", {QueueState::kActive, QueueState::kDeferred, QueueState::kHold}, std::nullopt, "Deleted"},
    {"hold", {QueueState::kActive, QueueState::kDeferred}, QueueState::kHold, "Placed on hold"},
    {"release", {QueueState::kHold}, QueueState::kDeferred, "Released from hold"},
    {"flush", {QueueState::kDeferred}, std::nullopt, "Flushed"},
};

// Applies `verb` to the message `id` if it is in `state`: true when done, false when it is not there.
Result<bool> apply(const queue::Spool& spool, const Verb& verb, const std::string& id, QueueState state) {
  std::string_view name = verb.name;
  if (name == "delete") return spool.remove(id, state);
  // Released and flushed messages are due at once: their deferred file's mtime is now (touched before the
  // move, so that the file is due the moment it appears in deferred/).
  if (name == "release" || name == "flush") {
    auto touched = spool.touch(id, state, std::chrono::system_clock::now());
    if (!touched || !*touched || !verb.to) return touched;
  }
  return spool.move(id, state, *verb.to);
}

// postqueue -f: tells the running server to scan deferred/ now.
void wake_queue_manager(const config::Config& cfg) {
  pid_t pid = running_pid(cfg);
  if (pid == 0) {
    fmt::print("postern: the mail system is not running: the messages are due and leave at its next start\n");
  } else if (::kill(pid, SIGUSR1) != 0) {
    fmt::print(stderr, "postern: warning: cannot signal the queue manager (pid {}): {}\n", pid,
               std::strerror(errno));
  }
}

}  // namespace

int cmd_queue(const std::string& dir, const Args& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    fmt::print("{}", kUsage);
    return 0;
  }
  const Verb* verb = nullptr;
  for (const Verb& v : kVerbs)
    if (!args.empty() && args[0] == v.name) verb = &v;
  bool flush = verb && std::string_view(verb->name) == "flush";
  if (!verb || (args.size() < 2 && !flush)) {
    fmt::print(stderr, "{}", kUsage);
    return kExUsage;
  }
  Args ids(args.begin() + 1, args.end());
  bool all = ids.empty() || (ids.size() == 1 && ids[0] == "ALL");
  for (const std::string& id : ids) {
    if (!all && !queue::valid_queue_id(id)) {
      fmt::print(stderr,
                 "postern: fatal: invalid queue id \"{}\" (queue ids are upper-case hex, as mailq shows)\n",
                 id);
      return kExUsage;
    }
  }
  auto cfg = config::Config::load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return kExConfig;
  }
  queue::Spool spool(cfg->get_path("queue_directory"));
  int status = 0;
  size_t count = 0;
  bool failed = false;  // the last run() could not tell whether the message was there
  auto run = [&](const std::string& id, QueueState state) {
    auto done = apply(spool, *verb, id, state);
    failed = !done;
    if (!done) {
      fmt::print(stderr, "postern: {}\n", done.error().message);
      status = kExIoErr;
      return false;
    }
    count += *done;
    return *done;
  };
  for (QueueState state : all ? verb->from : std::vector<QueueState>{}) {
    auto names = spool.ids(state);
    if (!names) {
      fmt::print(stderr, "postern: {}\n", names.error().message);
      status = kExIoErr;
      continue;
    }
    for (const std::string& id : *names) run(id, state);
  }
  for (const std::string& id : all ? Args{} : ids) {
    // An error is reported as itself, never also as "no such message".
    if (std::none_of(verb->from.begin(), verb->from.end(),
                     [&](QueueState s) { return run(id, s) || failed; })) {
      fmt::print(stderr, "postern: {}: no such message in {}\n", id,
                 verb->from.size() == 1 ? fmt::format("{}/", queue::state_name(verb->from[0]))
                                        : std::string("the queue"));
      if (status == 0) status = 1;
    }
  }
  fmt::print("postern: {}: {} message{}\n", verb->done, count, count == 1 ? "" : "s");
  if (flush) wake_queue_manager(*cfg);
  return status;
}

}  // namespace postern::cli

// exe/main.cpp: `postern [-c DIR] COMMAND ...`: picks the subcommand from a table and runs it.
#include <fmt/format.h>

#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace {

using postern::cli::Args;

struct CommandEntry {
  const char* name;
  const char* help;
  int (*run)(const std::string& dir, const std::string& name, const Args& args);
};

const CommandEntry kCommands[] = {
    {"serve", "run every configured service in the foreground, logging to stderr",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_serve(d, a); }},
    {"session-child", "internal: a system user's IMAP/POP3 session, started by the privileged helper",
     [](const std::string& d, const std::string&, const Args& a) {
       return postern::cli::cmd_session_child(d, a);
     }},
    {"start", "start the mail system in the background",
     [](const std::string& d, const std::string& n, const Args& a) {
       return postern::cli::cmd_service(d, n, a);
     }},
    {"stop", "stop the background mail system, finishing messages in flight",
     [](const std::string& d, const std::string& n, const Args& a) {
       return postern::cli::cmd_service(d, n, a);
     }},
    {"restart", "stop, then start",
     [](const std::string& d, const std::string& n, const Args& a) {
       return postern::cli::cmd_service(d, n, a);
     }},
    {"status", "tell whether the mail system is running",
     [](const std::string& d, const std::string& n, const Args& a) {
       return postern::cli::cmd_service(d, n, a);
     }},
    {"reload", "re-read main.cf without dropping connections",
     [](const std::string& d, const std::string& n, const Args& a) {
       return postern::cli::cmd_service(d, n, a);
     }},
    {"postconf", "show or edit settings: [-n|-d] [-x] [KEY...] | -e 'key = value' ...",
     [](const std::string& d, const std::string&, const Args& a) {
       return postern::cli::cmd_postconf(d, a);
     }},
    {"check", "validate the configuration, files and permissions",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_check(d, a); }},
    {"setup", "answer dpkg-reconfigure postfix's questions and write main.cf (--help for flags)",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_setup(d, a); }},
    {"sendmail", "deliver a message from stdin: [-t] [-i] [-f FROM] [RCPT...]",
     [](const std::string& d, const std::string&, const Args& a) {
       return postern::cli::cmd_sendmail(d, a);
     }},
    {"mail", "list a user's INBOX, or print a message: [-u USER] [read N]",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_mail(d, a); }},
    {"maildirmake", "create a Maildir or a Maildir++ folder: [-f FOLDER] DIR",
     [](const std::string&, const std::string&, const Args& a) { return postern::cli::cmd_maildirmake(a); }},
    {"mailq", "list the outbound queue: id, size, arrival, sender, recipients, deferral reason",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_mailq(d, a); }},
    {"queue", "steer the outbound queue: flush [ID...] | delete|hold|release ID...|ALL",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_queue(d, a); }},
    {"dkim", "make a DKIM signing key and print the DNS records: keygen DOMAIN [--selector S] [--type T]",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_dkim(d, a); }},
    {"user", "manage virtual users: add|del|passwd|list [NAME] [--password-stdin]",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_user(d, a); }},
    {"demo", "write a demo configuration into DIR if it has none, then serve it (make run)",
     [](const std::string& d, const std::string&, const Args& a) { return postern::cli::cmd_demo(d, a); }},
};

void usage(FILE* out) {
  fmt::print(out,
             "usage: postern [-c DIR] COMMAND [ARGS...]\n  -c DIR  configuration directory (default "
             "/etc/postern)\n\n");
  for (const auto& c : kCommands) fmt::print(out, "  {:<12} {}\n", c.name, c.help);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/etc/postern";
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      break;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return postern::cli::kExUsage;
  }
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string name = argv[i];
  Args args(argv + i + 1, argv + argc);
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h") && name != "setup" && name != "postconf" &&
        name != "maildirmake" && name != "dkim" && name != "queue") {
      fmt::print("postern {}: {}\n", c.name, c.help);
      return 0;
    }
    return c.run(dir, name, args);
  }
  fmt::print(stderr, "postern: unknown command \"{}\"\n\n", name);
  usage(stderr);
  return postern::cli::kExUsage;
}

// cli/user.cpp: `postern user add|del|passwd|list`: virtual users in passwd_file (Dovecot's passwd-file).
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "auth/passwd_file.hpp"
#include "base/strings.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"

namespace postern::cli {
namespace {

// Reads one line from the terminal without echo; false at EOF.
bool prompt_secret(const char* prompt, std::string& out) {
  FILE* tty = std::fopen("/dev/tty", "r+");
  FILE* in = tty ? tty : stdin;
  FILE* echo_to = tty ? tty : stderr;
  std::fputs(prompt, echo_to);
  std::fflush(echo_to);
  termios old{};
  bool restore = tcgetattr(fileno(in), &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fileno(in), TCSAFLUSH, &quiet);
  }
  char buf[1024];
  bool ok = std::fgets(buf, sizeof buf, in) != nullptr;
  if (restore) tcsetattr(fileno(in), TCSAFLUSH, &old);
  std::fputs("\n", echo_to);
  if (tty) std::fclose(tty);
  if (!ok) return false;
  out = buf;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  explicit_bzero(buf, sizeof buf);
  return true;
}

bool read_password(bool from_stdin, std::string& pw) {
  if (from_stdin) {
    if (!std::getline(std::cin, pw)) return false;
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    return true;
  }
  std::string again;
  if (!prompt_secret("New password: ", pw) || !prompt_secret("Retype new password: ", again)) return false;
  if (pw != again) {
    fmt::print(stderr, "postern: user: the passwords do not match\n");
    return false;
  }
  return true;
}

}  // namespace

int cmd_user(const std::string& dir, const Args& args) {
  auto usage = [] {
    fmt::print(
        stderr,
        "usage: postern -c DIR user add NAME [--password-stdin]\n"
        "       postern -c DIR user passwd NAME [--password-stdin]\n"
        "       postern -c DIR user del NAME\n"
        "       postern -c DIR user list\n"
        "  NAME is user@domain, the domain one of virtual_mailbox_domains (the domain may be left out\n"
        "  when there is only one).\n");
    return kExUsage;
  };
  if (args.empty()) return usage();
  std::string verb = args[0];
  std::string name;
  bool from_stdin = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--password-stdin") {
      from_stdin = true;
    } else if (name.empty() && args[i][0] != '-') {
      name = args[i];
    } else {
      return usage();
    }
  }
  auto cfg = config::Config::load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  std::string path = cfg->get_path("passwd_file");
  auto entries = auth::read_passwd_file(path);
  if (!entries) {
    fmt::print(stderr, "postern: fatal: {}\n", entries.error().message);
    return 1;
  }
  if (verb == "list") {
    for (const auto& e : *entries) fmt::print("{}\n", e.user);
    return 0;
  }
  if (name.empty()) return usage();
  auto domains = cfg->get_list("virtual_mailbox_domains");
  if (name.find('@') == std::string::npos) {
    if (domains.size() != 1) {
      fmt::print(stderr, "postern: user: give the name as user@domain ({} virtual domains are set)\n",
                 domains.size());
      return kExUsage;
    }
    name += "@" + domains.front();
  }
  name = to_lower(name);
  std::string domain = name.substr(name.rfind('@') + 1);
  if (name.find(':') != std::string::npos || name.front() == '@' ||
      std::none_of(domains.begin(), domains.end(),
                   [&](const std::string& d) { return iequals(d, domain); })) {
    fmt::print(stderr,
               "postern: user: \"{}\" is not in a virtual domain; add the domain first:\n"
               "  postern -c {} postconf -e 'virtual_mailbox_domains = {}'\n",
               name, dir, domain);
    return kExUsage;
  }
  auto it =
      std::find_if(entries->begin(), entries->end(), [&](const auto& e) { return iequals(e.user, name); });
  if (verb == "add" || verb == "passwd") {
    if (verb == "add" && it != entries->end()) {
      fmt::print(stderr, "postern: user: {} exists already\n", name);
      return 1;
    }
    if (verb == "passwd" && it == entries->end()) {
      fmt::print(stderr, "postern: user: no such user: {}\n", name);
      return kExNoUser;
    }
    std::string pw;
    if (!read_password(from_stdin, pw) || pw.empty()) {
      fmt::print(stderr, "postern: user: no password given\n");
      return 1;
    }
    if (it == entries->end()) {
      auth::PasswdEntry e;
      e.user = name;
      entries->push_back(std::move(e));
      it = entries->end() - 1;
    }
    auto st = auth::set_password(*it, pw);
    explicit_bzero(pw.data(), pw.size());
    if (!st) {
      fmt::print(stderr, "postern: user: {}\n", st.error().message);
      return 1;
    }
  } else if (verb == "del") {
    if (it == entries->end()) {
      fmt::print(stderr, "postern: user: no such user: {}\n", name);
      return kExNoUser;
    }
    entries->erase(it);
  } else {
    return usage();
  }
  if (auto st = auth::write_passwd_file(path, *entries, auth::passwd_file_group(cfg->get("mail_owner")));
      !st) {
    fmt::print(stderr, "postern: user: {}\n", st.error().message);
    return 1;
  }
  return 0;
}

}  // namespace postern::cli

// cli/setup.cpp: `postern setup`, the questions `dpkg-reconfigure postfix` asks, answered at a prompt or by
// flags, written into main.cf with postconf -e's editor; and `postern demo`, the embedded default
// configuration `make run` starts.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include <fmt/format.h>

#include "auth/passwd_file.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"

namespace postern::cli {
namespace {

struct Question {
  std::string flag;  // --flag VALUE
  std::string prompt;
  std::string help;
};

const Question kQuestions[] = {
    {"type", "General mail configuration type (internet, local)",
     "internet: mail is sent and received directly over SMTP; local: only local mail, on loopback"},
    {"mailname", "System mail name", "the domain that qualifies addresses without one (myorigin)"},
    {"root-recipient", "Root and postmaster mail recipient",
     "a user who receives root's and postmaster's mail"},
    {"destinations", "Other destinations to accept mail for", "mydestination"},
    {"sync-updates", "Force synchronous updates on mail queue? (yes/no)",
     "Postern always fsyncs before it acknowledges a message; the answer is accepted and changes nothing"},
    {"mynetworks", "Local networks", "mynetworks"},
    {"mailbox-size-limit", "Mailbox size limit (bytes, 0 for none)", "mailbox_size_limit"},
    {"recipient-delimiter", "Local address extension character", "recipient_delimiter"},
    {"inet-protocols", "Internet protocols to use (all, ipv4, ipv6)", "inet_protocols"},
};

bool is_flag(const std::string& name) {
  for (const auto& q : kQuestions)
    if (q.flag == name) return true;
  return name == "non-interactive" || name == "procmail";
}

void add_root_alias(const config::Config& cfg, const std::string& recipient) {
  auto maps = cfg.get_list("alias_maps");
  if (maps.empty()) return;
  std::string path =
      maps.front().substr(maps.front().find(':') == std::string::npos ? 0 : maps.front().find(':') + 1);
  if (path[0] != '/') path = cfg.dir() + "/" + path;
  std::string text;
  {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::string l = to_lower(std::string(trim(line)));
      if (l.rfind("root:", 0) == 0) continue;  // replaced below
      text += line + "\n";
    }
  }
  if (text.find("postmaster:") == std::string::npos) text += "postmaster: root\n";
  text += "root: " + recipient + "\n";
  std::ofstream(path) << text;
  fmt::print("setup: {}: root: {}\n", path, recipient);
}

std::string random_password() {
  static const char kChars[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 16; ++i) out += kChars[rd() % (sizeof kChars - 1)];
  return out;
}

}  // namespace

int cmd_setup(const std::string& dir, const Args& args) {
  std::map<std::string, std::string> answers;
  bool interactive = true;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "-h" || a == "--help") {
      fmt::print(
          "usage: postern -c DIR setup [--non-interactive] [--FLAG VALUE ...]\n"
          "Asks what dpkg-reconfigure postfix asks and writes DIR/main.cf. Flags answer questions:\n");
      for (const auto& q : kQuestions) fmt::print("  --{:<22} {} ({})\n", q.flag, q.prompt, q.help);
      fmt::print("  --non-interactive        use the defaults for every question not answered by a flag\n");
      return 0;
    }
    if (a.rfind("--", 0) != 0) {
      fmt::print(stderr, "postern: setup: unexpected argument \"{}\" (see --help)\n", a);
      return kExUsage;
    }
    a = a.substr(2);
    std::string value;
    if (size_t eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a != "non-interactive") {
      if (i + 1 >= args.size()) {
        fmt::print(stderr, "postern: setup: --{} needs a value\n", a);
        return kExUsage;
      }
      value = args[++i];
    }
    if (!is_flag(a)) {
      fmt::print(stderr, "postern: setup: unknown option --{} (see --help)\n", a);
      return kExUsage;
    }
    if (a == "non-interactive") {
      interactive = false;
    } else {
      answers[a] = value;
    }
  }
  if (answers.count("procmail") && answers["procmail"] != "no") {
    fmt::print(stderr, "postern: setup: procmail is not supported: Postern delivers to Maildir itself\n");
    return kExUsage;
  }
  ::mkdir(dir.c_str(), 0755);
  auto cfg = config::Config::load(dir, true);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  std::map<std::string, std::string> defaults = {
      {"type", "internet"},
      {"mailname", cfg->get("myorigin")},
      {"root-recipient", ""},
      {"destinations", cfg->raw("mydestination")},
      {"sync-updates", "no"},
      {"mynetworks", cfg->raw("mynetworks")},
      {"mailbox-size-limit", cfg->raw("mailbox_size_limit")},
      {"recipient-delimiter", cfg->raw("recipient_delimiter")},
      {"inet-protocols", cfg->raw("inet_protocols")},
  };
  for (const auto& q : kQuestions) {
    if (answers.count(q.flag)) continue;
    if (!interactive) {
      answers[q.flag] = defaults[q.flag];
      continue;
    }
    fmt::print("{} [{}]: ", q.prompt, defaults[q.flag]);
    std::fflush(stdout);
    std::string line;
    if (!std::getline(std::cin, line)) line.clear();
    line = std::string(trim(line));
    answers[q.flag] = line.empty() ? defaults[q.flag] : line;
  }
  std::string type = to_lower(answers["type"]);
  if (type == "internet site") type = "internet";
  if (type == "local only") type = "local";
  if (type != "internet" && type != "local") {
    fmt::print(stderr, "postern: setup: mail configuration type must be internet or local, not \"{}\"\n",
               type);
    return kExUsage;
  }
  std::vector<std::pair<std::string, std::string>> edits = {
      {"myorigin", answers["mailname"]},
      {"mydestination", answers["destinations"]},
      {"mynetworks", answers["mynetworks"]},
      {"mailbox_size_limit", answers["mailbox-size-limit"]},
      {"recipient_delimiter", answers["recipient-delimiter"]},
      {"inet_protocols", answers["inet-protocols"]},
      {"inet_interfaces", type == "local" ? "loopback-only" : "all"},
  };
  if (auto st = edit_config(dir, edits); !st) {
    fmt::print(stderr, "postern: setup: {}\n", st.error().message);
    return 1;
  }
  auto fresh = config::Config::load(dir);
  if (!fresh) {
    fmt::print(stderr, "postern: fatal: {}\n", fresh.error().message);
    return 1;
  }
  if (!answers["root-recipient"].empty()) add_root_alias(*fresh, answers["root-recipient"]);
  std::string mailname = answers["mailname"];
  fmt::print("setup: wrote {}/main.cf\n", dir);
  if (type == "internet") {
    fmt::print(
        "\nPublish these DNS records for {} (replace ADDRESS with this server's public address):\n"
        "  {}.        MX    10 {}.\n"
        "  {}.        A     ADDRESS\n"
        "  {}.        TXT   \"v=spf1 mx -all\"\n"
        "  _dmarc.{}. TXT   \"v=DMARC1; p=none\"\n"
        "and a PTR record for ADDRESS naming {}.\n",
        mailname, mailname, fresh->get("myhostname"), fresh->get("myhostname"), mailname, mailname,
        fresh->get("myhostname"));
  }
  return 0;
}

int cmd_demo(const std::string& dir, const Args& args) {
  (void)args;
  ::mkdir(dir.c_str(), 0755);
  std::string main_cf = dir + "/main.cf";
  bool fresh = ::access(main_cf.c_str(), F_OK) != 0;
  if (fresh) {
    std::ofstream(main_cf) << "# Postern demo configuration, written by `make run` (postern demo).\n"
                              "# Unprivileged ports, everything under this directory.\n"
                              "smtp_listen = 127.0.0.1:2525, [::1]:2525\n"
                              "imap_listen = 127.0.0.1:1143, [::1]:1143\n"
                              "pop3_listen = 127.0.0.1:1110, [::1]:1110\n"
                              "# Loopback only: logins in plaintext are allowed without STARTTLS too.\n"
                              "disable_plaintext_auth = no\n"
                              "queue_directory = queue\n"
                              "alias_maps = hash:aliases\n"
                              "virtual_mailbox_domains = example.test\n"
                              "virtual_mailbox_base = mail\n"
                              "passwd_file = users\n"
                              "maillog_file = postern.log\n";
    std::ofstream(dir + "/aliases") << "postmaster: demo@example.test\nroot: demo@example.test\n";
  }
  // The TLS listeners, also added to a demo configuration written by an older version.
  if (auto text = read_file(main_cf)) {
    std::string edited = *text;
    for (auto [key, value] :
         {std::pair{"submission_listen", "127.0.0.1:1587"}, std::pair{"submissions_listen", "127.0.0.1:1465"},
          std::pair{"imaps_listen", "127.0.0.1:1993"}, std::pair{"pop3s_listen", "127.0.0.1:1995"}})
      if (edited.find(std::string("\n") + key) == std::string::npos)
        edited = config::edit_main_cf(edited, key, value);
    if (edited != *text) (void)write_file_atomically(main_cf, edited, 0644);
  }
  auto cfg = config::Config::load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  std::string password;
  auto users = auth::read_passwd_file(cfg->get_path("passwd_file"));
  if (users && users->empty()) {
    password = random_password();
    auto hash = auth::hash_password(password);
    if (!hash) return 1;
    if (!auth::write_passwd_file(cfg->get_path("passwd_file"),
                                 {{"demo@example.test", *hash, "", "", "", "", "", ""}},
                                 auth::passwd_file_group(cfg->get("mail_owner"))))
      return 1;
  }
  std::string abs = dir;
  if (char* real = ::realpath(dir.c_str(), nullptr)) {
    abs = real;
    std::free(real);
  }
  fmt::print(
      "\nPostern demo, configuration {}/main.cf\n"
      "  SMTP:        127.0.0.1 port 2525 (STARTTLS), submission 1587 (STARTTLS + AUTH), 1465 (TLS + AUTH)\n"
      "  IMAP:        127.0.0.1 port 1143 (STARTTLS), 1993 (TLS); POP3: 1110 (STLS), 1995 (TLS)\n"
      "  TLS:         a self-signed certificate, made on first start under {}/queue/tls/\n"
      "  demo user:   demo@example.test, password {}\n"
      "  its mail:    {}/mail/example.test/demo/new/\n\n"
      "Try it (the guide's telnet session):\n"
      "  telnet localhost 2525\n"
      "  ehlo localhost\n"
      "  mail from: root@localhost\n"
      "  rcpt to: demo@example.test        (or YOURUSER@localhost: your ~/Maildir)\n"
      "  data\n"
      "  Subject: My Postern Test\n\n"
      "  Test Message 123\n"
      "  .\n"
      "  quit\n\n"
      "or: swaks --server 127.0.0.1:2525 --to demo@example.test\n"
      "Then read it: build/postern -c {} mail -u demo@example.test\n"
      "or with an IMAP client, e.g. mutt -f imaps://demo@example.test@127.0.0.1:1993/INBOX\n"
      "(openssl s_client -connect 127.0.0.1:1993 shows the certificate)\n\n",
      abs, abs,
      password.empty()
          ? "(set earlier; change it with: build/postern -c " + dir + " user passwd demo@example.test)"
          : password,
      abs, dir);
  std::fflush(stdout);
  return cmd_serve(dir, {});
}

}  // namespace postern::cli

// cli/postconf.cpp: `postern postconf` and `postern check`, like Postfix's postconf(1) and `postfix check`.
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "config/parameters.hpp"
#include "delivery/remote.hpp"
#include "dns/unbound.hpp"
#include "net/listen.hpp"

namespace postern::cli {
namespace {

void print_entry(std::string_view name, std::string_view value) {
  if (value.empty()) {
    fmt::print("{} =\n", name);
  } else {
    fmt::print("{} = {}\n", name, value);
  }
}

}  // namespace

// Applies "key = value" edits to DIR/main.cf, refusing edits that would make it invalid.
Status edit_config(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& edits) {
  std::string file = dir + "/main.cf";
  std::string text;
  if (::access(file.c_str(), F_OK) == 0) {
    auto existing = read_file(file);
    if (!existing) return existing.error();
    text = std::move(*existing);
  }
  for (const auto& [k, v] : edits) text = config::edit_main_cf(text, k, v);
  auto check = config::Config::from_text(dir, text, file);
  if (!check) return Error{check.error().message + " (main.cf left unchanged)"};
  return write_file_atomically(file, text, 0644);
}

int cmd_postconf(const std::string& dir, const Args& args) {
  bool non_default = false, defaults = false, expand = false, edit = false;
  std::vector<std::string> rest;
  for (const auto& a : args) {
    if (a == "-n") {
      non_default = true;
    } else if (a == "-d") {
      defaults = true;
    } else if (a == "-x") {
      expand = true;
    } else if (a == "-e") {
      edit = true;
    } else if (a == "-h" || a == "--help") {
      fmt::print(
          "usage: postern -c DIR postconf [-n | -d] [-x] [KEY...]\n"
          "       postern -c DIR postconf -e 'key = value' ...\n"
          "  (no option)  every effective setting      -n  only those set in main.cf\n"
          "  -d           the defaults                 -x  expand $name references\n"
          "  -e           edit main.cf in place, keeping comments and order\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      fmt::print(stderr, "postern: postconf: unknown option {}\n", a);
      return kExUsage;
    } else {
      rest.push_back(a);
    }
  }
  if (edit) {
    std::vector<std::pair<std::string, std::string>> edits;
    for (const auto& r : rest) {
      size_t eq = r.find('=');
      if (eq == std::string::npos) {
        fmt::print(stderr, "postern: postconf: -e needs 'key = value', got \"{}\"\n", r);
        return kExUsage;
      }
      std::string key(trim(std::string_view(r).substr(0, eq)));
      std::string value(trim(std::string_view(r).substr(eq + 1)));
      edits.emplace_back(key, value);
    }
    if (auto st = edit_config(dir, edits); !st) {
      fmt::print(stderr, "postern: fatal: {}\n", st.error().message);
      return 1;
    }
    return 0;
  }
  auto cfg = config::Config::load(dir, true);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  auto value_of = [&](std::string_view name) {
    if (defaults) return cfg->default_value(name);
    return expand ? cfg->get(name) : cfg->raw(name);
  };
  if (!rest.empty()) {
    int rc = 0;
    for (const auto& name : rest) {
      if (!config::find_parameter(name)) {
        fmt::print(stderr, "postern: warning: {}: unknown parameter\n", name);
        rc = 1;
        continue;
      }
      print_entry(name, value_of(name));
    }
    return rc;
  }
  for (const auto& p : config::parameters()) {
    if (non_default && !cfg->is_set(std::string(p.name))) continue;
    print_entry(p.name, value_of(p.name));
  }
  if (non_default) {
    for (const auto& [key, e] : cfg->entries())
      if (key.find('/') != std::string::npos) print_entry(key, e.value);
  }
  return 0;
}

int cmd_check(const std::string& dir, const Args& args) {
  if (!args.empty()) {
    fmt::print(stderr, "usage: postern -c DIR check\n");
    return kExUsage;
  }
  auto cfg = config::Config::load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  int problems = 0;
  auto problem = [&](const std::string& what) {
    fmt::print(stderr, "postern: error: {}\n", what);
    ++problems;
  };
  for (const char* key : {"smtp_listen", "imap_listen", "pop3_listen"})
    if (auto l = net::listen_addresses(*cfg, key); !l) problem(l.error().message);
  for (const auto& server : cfg->get_list("dns_servers"))
    if (auto f = dns::forwarder(server); !f) problem("dns_servers: " + f.error().message);
  if (auto remote = delivery::RemoteSettings::from_config(*cfg); !remote) {
    problem(remote.error().message);
  } else if (remote->tls_level == delivery::TlsLevel::kDane ||
             remote->tls_level == delivery::TlsLevel::kDaneOnly) {
    std::string anchor = cfg->get_path("dnssec_trust_anchor_file");
    if (::access(anchor.c_str(), R_OK) != 0)
      problem("dnssec_trust_anchor_file " + anchor + " is not readable: " + std::strerror(errno));
  }
  auto host = net::host_facts(*cfg);
  for (std::string_view service : smtp::server::kSmtpServices)
    if (auto p = smtp::server::Policy::load(*cfg, service, host); !p) problem(p.error().message);
  if (cfg->get_int("message_size_limit") && cfg->get_int("mailbox_size_limit") &&
      cfg->get_int("mailbox_size_limit") < cfg->get_int("message_size_limit"))
    problem("mailbox_size_limit is smaller than message_size_limit");
  std::string q = cfg->get_path("queue_directory");
  struct stat st;
  if (::stat(q.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      problem("queue_directory " + q + " is not a directory");
    else if (::access(q.c_str(), W_OK) != 0)
      problem("queue_directory " + q + " is not writable");
  } else {
    std::string parent = q.substr(0, q.rfind('/'));
    if (parent.empty() || ::access(parent.c_str(), W_OK) != 0)
      problem("queue_directory " + q + " does not exist and cannot be created");
  }
  std::string passwd_path = cfg->get_path("passwd_file");
  if (!cfg->get_list("virtual_mailbox_domains").empty() && ::access(passwd_path.c_str(), R_OK) != 0)
    problem("passwd_file " + passwd_path + " is not readable: " + std::strerror(errno));
  // Started as root, the server writes virtual mail as mail_owner: the base must belong to it.
  std::string owner = cfg->get("mail_owner");
  passwd* pw = ::geteuid() == 0 ? ::getpwnam(owner.c_str()) : nullptr;
  std::string base = cfg->get_path("virtual_mailbox_base");
  if (::geteuid() == 0 && !pw)
    problem("mail_owner " + owner + " does not exist (scripts/install-deps.sh creates it)");
  if (pw && !cfg->get_list("virtual_mailbox_domains").empty() && ::stat(base.c_str(), &st) == 0 &&
      st.st_uid != pw->pw_uid)
    problem(fmt::format("virtual_mailbox_base {} belongs to uid {}, not to mail_owner {}: chown -R {}: {}",
                        base, st.st_uid, owner, owner, base));
  for (const auto& p : config::parameters())
    if (!p.implemented && cfg->is_set(std::string(p.name)))
      fmt::print(stderr, "postern: warning: {}: accepted, but has no effect yet in this version\n", p.name);
  return problems ? 1 : 0;
}

}  // namespace postern::cli

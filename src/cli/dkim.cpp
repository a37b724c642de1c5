// cli/dkim.cpp: `postern -c DIR dkim keygen DOMAIN [--selector S] [--type rsa|ed25519] [--force]`, as
// opendkim-genkey: makes a signing key under DIR/dkim/DOMAIN/S.key (dkim/keys.hpp) and prints the DNS
// records to publish: the key record (RFC 6376 3.6.1, RFC 8463), and the SPF (RFC 7208) and DMARC (RFC 7489)
// records we suggest. The server signs with the newest key of a domain from its next start or reload.
// Security: run by the administrator; DOMAIN and S become file names, so they must be DNS names.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "cli/commands.hpp"
#include "dkim/keys.hpp"

namespace postern::cli {
namespace {

constexpr size_t kMaxTxtString = 255;  // RFC 1035 3.3: a character-string

constexpr const char* kUsage =
    "usage: postern -c DIR dkim keygen DOMAIN [--selector S] [--type rsa|ed25519] [--force]\n"
    "\n"
    "Makes a DKIM signing key for DOMAIN in DIR/dkim/DOMAIN/S.key (mode 0600) and prints the DNS records\n"
    "to publish: the key (S._domainkey.DOMAIN TXT), and suggested SPF and DMARC records. Once the server\n"
    "starts or reloads, mail from DOMAIN (its From field) sent by authenticated users, mynetworks or\n"
    "postern sendmail is signed (relaxed/relaxed) when it enters the outbound queue; with several keys\n"
    "for a domain, the newest signs.\n"
    "\n"
    "  --selector S  the selector (default: the year and month, e.g. 202611, so that a new key made\n"
    "                later gets a new name and the old record can stay published until mail signed\n"
    "                with it is delivered)\n"
    "  --type T      rsa (2048 bits, the default: every verifier knows it) or ed25519 (RFC 8463)\n"
    "  --force       replace an existing key of that selector\n";

// "YYYYMM" of now, UTC.
std::string default_selector() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  return fmt::format("{:04}{:02}", tm.tm_year + 1900, tm.tm_mon + 1);
}

// `value` as a TXT record's character-strings, each at most 255 bytes.
std::string txt_strings(std::string_view value) {
  std::string out;
  for (size_t pos = 0; pos < value.size(); pos += kMaxTxtString)
    out += fmt::format("{}\"{}\"", out.empty() ? "" : " ", value.substr(pos, kMaxTxtString));
  return out;
}

Status make_directory(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 ? ::chmod(path.c_str(), 0755) != 0 : errno != EEXIST)
    return Error{fmt::format("{}: {}", path, std::strerror(errno))};
  return Ok{};
}

int keygen(const std::string& dir, const Args& args) {
  std::string domain, selector = default_selector(), type = "rsa";
  bool force = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--selector" || a == "--type") && i + 1 < args.size()) {
      (a == "--selector" ? selector : type) = args[++i];
    } else if (a == "--force") {
      force = true;
    } else if (a.empty() || a[0] == '-' || !domain.empty()) {
      fmt::print(stderr, "{}", kUsage);
      return kExUsage;
    } else {
      domain = to_lower(a);
    }
  }
  if (domain.ends_with('.')) domain.pop_back();
  if (!dkim::valid_name(domain) || domain.find('.') == std::string::npos) {
    fmt::print(stderr, "postern: dkim: \"{}\" is not a domain name\n", printable(domain));
    return kExUsage;
  }
  if (!dkim::valid_name(selector)) {
    fmt::print(stderr, "postern: dkim: \"{}\" is not a selector (letters, digits, '-', '_' and dots)\n",
               printable(selector));
    return kExUsage;
  }
  if (type != "rsa" && type != "ed25519") {
    fmt::print(stderr, "postern: dkim: --type must be rsa or ed25519, not \"{}\"\n", printable(type));
    return kExUsage;
  }
  std::string keys = dkim::key_directory(dir), domain_dir = keys + "/" + domain;
  std::string path = domain_dir + "/" + selector + ".key";
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && !force) {
    fmt::print(stderr, "postern: dkim: {} exists already; --force replaces it\n", path);
    return kExCantCreat;
  }
  auto key = dkim::generate_key(type == "rsa" ? dkim::KeyType::kRsa : dkim::KeyType::kEd25519);
  if (!key) {
    fmt::print(stderr, "postern: dkim: {}\n", key.error().message);
    return kExSoftware;
  }
  Status written = make_directory(keys);
  if (written) written = make_directory(domain_dir);
  // write_file_atomically keeps an existing file's mode: a replaced key is made private first.
  if (written && exists && ::chmod(path.c_str(), 0600) != 0)
    written = Error{fmt::format("{}: {}", path, std::strerror(errno))};
  if (written) written = write_file_atomically(path, dkim::private_key_pem(key->get()), 0600);
  if (!written) {
    fmt::print(stderr, "postern: dkim: {}\n", written.error().message);
    return kExCantCreat;
  }
  fmt::print(
      "; DKIM key for {domain} written to {path}{owner}.\n"
      "; Publish these records in the DNS zone of {domain}; mail from {domain} is signed with this key\n"
      "; (selector {selector}) once the server starts or reloads (postern -c {dir} reload).\n"
      "{selector}._domainkey.{domain}. IN TXT {record}\n"
      "; Suggested SPF: only the domain's MX hosts send its mail (RFC 7208).\n"
      "{domain}. IN TXT \"v=spf1 mx -all\"\n"
      "; Suggested DMARC: reports to postmaster, no policy yet; p=quarantine or p=reject once they look\n"
      "; right (RFC 7489).\n"
      "_dmarc.{domain}. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@{domain}\"\n",
      fmt::arg("domain", domain), fmt::arg("path", path), fmt::arg("selector", selector),
      fmt::arg("dir", dir), fmt::arg("record", txt_strings(dkim::key_record(key->get()))),
      fmt::arg("owner", ::geteuid() == 0 ? " (root's, mode 0600: the server reads it before it drops root, "
                                           "or through its privileged helper)"
                                         : " (mode 0600)"));
  return 0;
}

}  // namespace

int cmd_dkim(const std::string& dir, const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    fmt::print(args.empty() ? stderr : stdout, "{}", kUsage);
    return args.empty() ? kExUsage : 0;
  }
  if (args[0] != "keygen") {
    fmt::print(stderr, "postern: dkim: unknown subcommand \"{}\"\n{}", printable(args[0]), kUsage);
    return kExUsage;
  }
  return keygen(dir, args);
}

}  // namespace postern::cli

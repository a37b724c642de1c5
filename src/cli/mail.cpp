// cli/mail.cpp: `postern mail [-u USER] [read N]`: a user's INBOX as mailx lists it, or one message.
// Reading a message marks it seen (new/ -> cur/ with the S flag), as Maildir readers do.
#include <dirent.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "delivery/local.hpp"
#include "mime/headers.hpp"

namespace postern::cli {
namespace {

struct Message {
  std::string path;
  bool is_new = false;
  bool seen = false;
  time_t mtime = 0;
  std::string name;
};

std::vector<Message> list_inbox(const std::string& maildir) {
  std::vector<Message> out;
  for (const char* sub : {"new", "cur"}) {
    std::string dir = maildir + "/" + sub;
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      Message m;
      m.name = e->d_name;
      m.path = dir + "/" + e->d_name;
      m.is_new = std::string_view(sub) == "new";
      size_t info = m.name.find(":2,");
      m.seen = info != std::string::npos && m.name.find('S', info + 3) != std::string::npos;
      struct stat st;
      if (::stat(m.path.c_str(), &st) == 0) m.mtime = st.st_mtime;
      out.push_back(std::move(m));
    }
    ::closedir(d);
  }
  // Delivery order: a Maildir name starts with the delivery time, "SECONDS.M<microseconds>...".
  auto key = [](const Message& m) {
    const char* p = m.name.c_str();
    char* end = nullptr;
    unsigned long long secs = std::strtoull(p, &end, 10), usecs = 0;
    if (end && end[0] == '.' && end[1] == 'M') usecs = std::strtoull(end + 2, nullptr, 10);
    return std::make_tuple(secs, usecs, m.name);
  };
  std::sort(out.begin(), out.end(), [&](const Message& a, const Message& b) { return key(a) < key(b); });
  return out;
}

std::string read_all(const std::string& path) {
  auto text = read_file(path);
  return text ? *text : std::string();
}

std::string short_date(const std::string& date_header, time_t fallback) {
  std::tm tm{};
  const char* formats[] = {"%a, %d %b %Y %H:%M:%S", "%d %b %Y %H:%M:%S"};
  for (const char* f : formats)
    if (strptime(date_header.c_str(), f, &tm)) {
      char buf[32];
      std::strftime(buf, sizeof buf, "%a %b %e %H:%M", &tm);
      return buf;
    }
  localtime_r(&fallback, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%a %b %e %H:%M", &tm);
  return buf;
}

std::string sender_of(const std::vector<mime::Field>& fields) {
  auto from = mime::find_field(fields, "From");
  if (from) {
    auto addrs = mime::parse_address_list(*from);
    if (!addrs.empty()) return addrs.front();
  }
  auto rp = mime::find_field(fields, "Return-Path");
  if (rp) {
    auto addrs = mime::parse_address_list(*rp);
    if (!addrs.empty() && !addrs.front().empty()) return addrs.front();
  }
  return "(unknown)";
}

std::string current_user() {
  passwd* pw = ::getpwuid(::getuid());
  return pw ? pw->pw_name : "";
}

}  // namespace

int cmd_mail(const std::string& dir, const Args& args) {
  std::string user;
  long read_n = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-u" && i + 1 < args.size()) {
      user = args[++i];
    } else if (args[i] == "read" && i + 1 < args.size()) {
      read_n = std::strtol(args[++i].c_str(), nullptr, 10);
      if (read_n <= 0) {
        fmt::print(stderr, "postern: mail: bad message number \"{}\"\n", args[i]);
        return kExUsage;
      }
    } else {
      fmt::print(stderr, "usage: postern -c DIR mail [-u USER] [read N]\n");
      return kExUsage;
    }
  }
  auto cfg = config::Config::load(dir, true);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  std::string maildir;
  const char* env_mail = std::getenv("MAIL");
  struct stat st;
  if (user.empty() && env_mail && ::stat((std::string(env_mail) + "/cur").c_str(), &st) == 0) {
    maildir = env_mail;
  } else {
    if (user.empty()) user = current_user();
    delivery::LocalDelivery local(*cfg);
    auto mb = local.mailbox_of(user);
    if (mb.status != delivery::RcptStatus::kLocal || mb.mailboxes.empty()) {
      fmt::print(stderr, "postern: mail: no such user: {}\n", user);
      return kExNoUser;
    }
    maildir = mb.mailboxes.front().maildir;
  }
  auto messages = list_inbox(maildir);
  if (read_n > 0) {
    if (static_cast<size_t>(read_n) > messages.size()) {
      fmt::print(stderr, "postern: mail: {}: invalid message number ({} messages)\n", read_n,
                 messages.size());
      return 1;
    }
    Message& m = messages[static_cast<size_t>(read_n) - 1];
    std::string text = read_all(m.path);
    auto fields = mime::parse_header(text);
    fmt::print("Message {}:\nFrom {}  {}\n{}", read_n, sender_of(fields),
               short_date(mime::find_field(fields, "Date").value_or(""), m.mtime), text);
    if (!text.empty() && text.back() != '\n') fmt::print("\n");
    std::fflush(stdout);
    if (!m.seen) {
      std::string base = m.name.substr(0, m.name.find(":2,"));
      std::string flags =
          m.name.find(":2,") != std::string::npos ? m.name.substr(m.name.find(":2,") + 3) : "";
      flags += 'S';
      std::sort(flags.begin(), flags.end());
      std::string target = maildir + "/cur/" + base + ":2," + flags;
      ::rename(m.path.c_str(), target.c_str());
    }
    return 0;
  }
  if (messages.empty()) {
    fmt::print("No mail for {}\n", user.empty() ? maildir : user);
    return 0;
  }
  size_t n_new = std::count_if(messages.begin(), messages.end(), [](const Message& m) { return m.is_new; });
  size_t n_unread =
      std::count_if(messages.begin(), messages.end(), [](const Message& m) { return !m.is_new && !m.seen; });
  fmt::print("\"{}\": {} message{}{}{}\n", maildir, messages.size(), messages.size() == 1 ? "" : "s",
             n_new ? fmt::format(" {} new", n_new) : "", n_unread ? fmt::format(" {} unread", n_unread) : "");
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    std::string text = read_all(m.path);
    auto fields = mime::parse_header(text);
    size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    char status = m.is_new ? 'N' : (m.seen ? ' ' : 'U');
    fmt::print("{}{}{:4} {:<20.20} {:<16} {:>4}/{:<6} {}\n", i == 0 ? '>' : ' ', status, i + 1,
               sender_of(fields), short_date(mime::find_field(fields, "Date").value_or(""), m.mtime), lines,
               text.size(), printable(mime::find_field(fields, "Subject").value_or(""), 60));
  }
  return 0;
}

}  // namespace postern::cli

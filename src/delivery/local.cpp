#include "delivery/local.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "base/calendar.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "dkim/keys.hpp"
#include "queue/dsn.hpp"
#include "store/maildir/mailbox.hpp"

namespace postern::delivery {
namespace {

constexpr int kMaxAliasDepth = 20;

// Splits "local@domain" at the last '@'.
void split_address(std::string_view addr, std::string& local, std::string& domain) {
  size_t at = addr.rfind('@');
  if (at == std::string_view::npos) {
    local = addr;
    domain.clear();
  } else {
    local = addr.substr(0, at);
    domain = addr.substr(at + 1);
  }
}

void open_tables(const config::Config& config, std::string_view key, TableFormat format,
                 std::vector<std::unique_ptr<AliasTable>>& out) {
  for (const auto& m : config.get_list(key)) {
    std::string path = table_path(m);
    if (path.empty()) {
      log::warning("local", "{}: unsupported table type in \"{}\", ignored", key, m);
      continue;
    }
    if (path[0] != '/') path = config.dir() + "/" + path;
    out.push_back(std::make_unique<AliasTable>(path, format));
  }
}

}  // namespace

LocalDelivery::LocalDelivery(const config::Config& config)
    : myhostname_(to_lower(config.get("myhostname"))),
      myorigin_(to_lower(config.get("myorigin"))),
      home_mailbox_(config.get("home_mailbox")),
      virtual_base_(config.get_path("virtual_mailbox_base")),
      delimiter_(config.get("recipient_delimiter")),
      mailbox_size_limit_(static_cast<uint64_t>(config.get_int("mailbox_size_limit"))),
      bounce_size_limit_(static_cast<uint64_t>(config.get_int("bounce_size_limit"))),
      passwd_(config.get_path("passwd_file")) {
  for (const auto& d : config.get_list("mydestination")) mydestination_.insert(to_lower(d));
  for (const auto& d : config.get_list("virtual_mailbox_domains")) virtual_domains_.insert(to_lower(d));
  open_tables(config, "alias_maps", TableFormat::kAliases, aliases_);
  open_tables(config, "virtual_alias_maps", TableFormat::kVirtual, virtual_aliases_);
  for (const auto& d : config.get_list("virtual_alias_domains")) virtual_alias_domains_.insert(to_lower(d));
}

bool LocalDelivery::is_local_domain(std::string_view domain) const {
  return mydestination_.count(to_lower(domain)) > 0;
}
bool LocalDelivery::is_virtual_domain(std::string_view domain) const {
  return virtual_domains_.count(to_lower(domain)) > 0;
}

Resolution LocalDelivery::resolve(std::string_view local, std::string_view domain) {
  Resolution r = resolve_depth(local, domain, 0, false);
  // A mailbox already at mailbox_size_limit is refused at RCPT (552 5.2.2), before the client sends the
  // message. A Maildir this process may not read (a system user's, behind the privileged helper) counts as
  // empty here; its limit is still enforced at delivery.
  if (r.status == RcptStatus::kLocal && mailbox_size_limit_ != 0) {
    for (const auto& mb : r.mailboxes) {
      if (store::maildir::usage(mb.maildir) >= mailbox_size_limit_) {
        r.status = RcptStatus::kMailboxFull;
        r.detail = mb.address + ": mailbox_size_limit reached";
        break;
      }
    }
  }
  return r;
}

Resolution LocalDelivery::mailbox_of(std::string_view user) {
  size_t at = user.rfind('@');
  if (at != std::string_view::npos && is_virtual_domain(user.substr(at + 1)))
    return resolve(user.substr(0, at), user.substr(at + 1));
  std::string name(at == std::string_view::npos ? user : user.substr(0, at));
  return resolve_system(name, name + "@" + myhostname_);
}

bool LocalDelivery::owns(std::string_view login, std::string_view address) {
  Resolution mine = mailbox_of(login);
  std::string local, domain;
  split_address(address, local, domain);
  Resolution theirs = resolve_depth(local, domain, 0, false);
  if (mine.status != RcptStatus::kLocal || theirs.status != RcptStatus::kLocal) return false;
  for (const auto& a : mine.mailboxes)
    for (const auto& b : theirs.mailboxes)
      if (a.maildir == b.maildir) return true;
  return false;
}

Resolution LocalDelivery::resolve_system(const std::string& user, const std::string& address) {
  Resolution r;
  passwd pw{};
  passwd* result = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &result) != 0 || !result) {
    r.status = RcptStatus::kUnknownUser;
    return r;
  }
  Mailbox mb;
  mb.address = address;
  mb.system_user = pw.pw_name;
  mb.maildir = std::string(pw.pw_dir) + "/" + home_mailbox_;
  if (mb.maildir.back() == '/') mb.maildir.pop_back();
  // Root may write as the user; anyone else writes as itself (and can only reach its own home).
  if (::geteuid() == 0) mb.owner = {true, pw.pw_uid, pw.pw_gid};
  r.status = RcptStatus::kLocal;
  r.mailboxes.push_back(std::move(mb));
  return r;
}

Resolution LocalDelivery::expand(const std::string& key, const std::vector<std::string>& targets, int depth) {
  Resolution r;
  r.status = RcptStatus::kLocal;
  for (const auto& t : targets) {
    if (t.empty() || t[0] == '|' || t[0] == '/' || istarts_with(t, ":include:")) {
      r.status = RcptStatus::kUnsupported;
      r.detail = "alias " + key + " expands to \"" + printable(t) +
                 "\": commands, files and includes are not supported";
      return r;
    }
    std::string tl, td;
    split_address(t, tl, td);
    if (td.empty()) td = myorigin_;
    // A target that names the alias itself is the mailbox behind it ("alice: alice, archive").
    std::string target = to_lower(tl) + "@" + to_lower(td);
    bool self = target == key || to_lower(tl) == key;
    Resolution sub = resolve_depth(tl, td, depth + 1, self);
    if (sub.status == RcptStatus::kNotOurDomain) {  // forwarded: the outbound queue takes it
      sub.status = RcptStatus::kLocal;
      sub.forward.push_back(tl + "@" + to_lower(td));
    }
    if (sub.status != RcptStatus::kLocal) return sub;
    for (auto& mb : sub.mailboxes) {
      bool dup = false;
      for (const auto& have : r.mailboxes) dup |= have.maildir == mb.maildir;
      if (!dup) r.mailboxes.push_back(std::move(mb));
    }
    for (auto& f : sub.forward)
      if (std::find(r.forward.begin(), r.forward.end(), f) == r.forward.end())
        r.forward.push_back(std::move(f));
  }
  return r;
}

Resolution LocalDelivery::resolve_depth(std::string_view local_in, std::string_view domain_in, int depth,
                                        bool no_alias) {
  Resolution r;
  std::string domain = to_lower(domain_in);
  if (domain.empty()) domain = myorigin_;
  std::string local = to_lower(local_in);
  if (depth > kMaxAliasDepth) {
    r.status = RcptStatus::kUnsupported;
    r.detail = "alias loop or nesting too deep";
    return r;
  }
  // The address with its extension removed: alice+tag -> alice.
  std::string base = local;
  if (!delimiter_.empty()) {
    size_t d = local.find_first_of(delimiter_);
    if (d != std::string::npos && d > 0) base = local.substr(0, d);
  }
  bool local_domain = is_local_domain(domain);
  bool virtual_domain = is_virtual_domain(domain);
  bool alias_domain = virtual_alias_domains_.count(domain) > 0;
  if (!local_domain && !virtual_domain && !alias_domain) {
    r.status = RcptStatus::kNotOurDomain;
    return r;
  }

  // virtual_alias_maps, for every domain of ours, in virtual(5)'s order: user@domain, without the extension,
  // the bare user (local domains only), then the catch-all @domain.
  if (!no_alias && !virtual_aliases_.empty()) {
    std::vector<std::string> keys = {local + "@" + domain};
    if (base != local) keys.push_back(base + "@" + domain);
    if (local_domain) {
      keys.push_back(local);
      if (base != local) keys.push_back(base);
    }
    keys.push_back("@" + domain);
    for (const auto& key : keys)
      for (auto& table : virtual_aliases_)
        if (auto targets = table->find(key))
          return expand(key == "@" + domain ? local + "@" + domain : key, *targets, depth);
  }
  if (virtual_domain) {
    for (const std::string& name : {local, base}) {
      auto found = passwd_.find(name + "@" + domain);
      if (!found) {
        log::error("local", "passwd_file: {}", found.error().message);
        r.status = RcptStatus::kLookupFailed;
        return r;
      }
      if (const auto& e = *found) {
        std::string user = to_lower(e->user.substr(0, e->user.rfind('@')));
        Mailbox mb;
        mb.address = user + "@" + domain;
        mb.maildir = virtual_base_ + "/" + domain + "/" + user;
        r.status = RcptStatus::kLocal;
        r.mailboxes.push_back(std::move(mb));
        return r;
      }
    }
    r.status = RcptStatus::kUnknownUser;
    return r;
  }
  if (!local_domain) {
    r.status = RcptStatus::kUnknownUser;  // a virtual alias domain without an alias for this address
    return r;
  }
  // alias_maps: the full local part first, then without its extension (Postfix's order).
  if (!no_alias) {
    for (const std::string& name : {local, base})
      for (auto& table : aliases_)
        if (auto targets = table->find(name)) return expand(name, *targets, depth);
  }
  r = resolve_system(base, base + "@" + myhostname_);
  if (r.status == RcptStatus::kUnknownUser && base == "postmaster")
    return resolve_system("root", "root@" + myhostname_);
  return r;
}

DeliveryOutcome LocalDelivery::deliver(const queue::Envelope& env, std::string_view received_header,
                                       std::string_view content) {
  DeliveryOutcome out;
  struct Target {
    std::string orig;  // the envelope recipient
    Mailbox mailbox;
  };
  std::vector<Target> targets;
  for (const auto& rcpt : env.recipients) {
    std::string local, domain;
    split_address(rcpt, local, domain);
    Resolution res = resolve(local, domain);
    if (res.status != RcptStatus::kLocal) {
      out.error = {store::ErrorKind::kTemporary, "recipient " + rcpt + " is no longer deliverable"};
      log::info("local", "{}: to=<{}>, relay=local, status=deferred ({})", env.queue_id, rcpt,
                out.error.detail);
      return out;
    }
    for (auto& mb : res.mailboxes) {
      bool dup = false;
      for (const auto& t : targets) dup |= t.mailbox.maildir == mb.maildir;
      if (!dup) targets.push_back({rcpt, std::move(mb)});
    }
  }

  // Phase one everywhere (tmp/ + fsync), then phase two everywhere (rename + fsync of new/).
  struct Prepared {
    store::maildir::Pending local;  // written by this process
    uint64_t token = 0;             // written by the privileged helper
  };
  auto abort_all = [&](std::vector<Prepared>& done) {
    for (auto& p : done) {
      if (p.token) {
        helper_->abort(p.token);
      } else {
        store::maildir::abort(p.local);
      }
    }
  };
  std::string return_path = "Return-Path: <" + env.sender + ">\n";
  std::vector<Prepared> prepared;
  for (const auto& t : targets) {
    std::string delivered_to = "Delivered-To: " + t.mailbox.address + "\n";
    std::vector<std::string_view> parts = {return_path, delivered_to, received_header, content};
    Prepared p;
    bool ok;
    if (helper_ && !t.mailbox.system_user.empty()) {
      std::string whole;
      for (auto part : parts) whole += part;
      auto token = helper_->prepare(t.mailbox.system_user, whole, out.error);
      ok = token.ok();
      if (ok) p.token = *token;
    } else {
      auto local = store::maildir::write_tmp(t.mailbox.maildir, parts, t.mailbox.owner, mailbox_size_limit_,
                                             out.error);
      ok = local.ok();
      if (ok) p.local = std::move(*local);
    }
    if (!ok) {
      abort_all(prepared);
      log::warning("local", "{}: to=<{}>: {}", env.queue_id, t.mailbox.address, out.error.detail);
      return out;
    }
    prepared.push_back(std::move(p));
  }
  double delay = std::chrono::duration<double>(std::chrono::system_clock::now() - env.arrival).count();
  for (size_t i = 0; i < prepared.size(); ++i) {
    store::StoreError err;
    auto final_path = prepared[i].token ? helper_->commit(prepared[i].token, err)
                                        : store::maildir::commit(prepared[i].local, err);
    const Target& t = targets[i];
    std::string orig = t.orig == t.mailbox.address ? "" : ", orig_to=<" + t.orig + ">";
    if (!final_path) {
      out.error = err;
      log::warning("local", "{}: to=<{}>{}, relay=local, status=deferred ({})", env.queue_id,
                   t.mailbox.address, orig, err.detail);
      continue;
    }
    log::info("local",
              "{}: to=<{}>{}, relay=local, delay={:.2f}, dsn=2.0.0, status=sent (delivered to maildir)",
              env.queue_id, t.mailbox.address, orig, delay);
    // IMAP sessions that have this mailbox selected (IDLE) hear of the message now.
    store::maildir::Mailbox::notify_changed(t.mailbox.maildir);
  }
  return out;
}

}  // namespace postern::delivery

namespace postern::delivery {
namespace {

// The success DSN for the local recipients of `env` that asked for one; its own failure is only logged.
void report_delivered(LocalDelivery& local, const queue::Spool& spool, const queue::Envelope& env,
                      std::string_view received_header, std::string_view content) {
  queue::DsnInput in;
  for (const auto& r : env.recipients) {
    auto asked = env.dsn.find(r);
    if (asked == env.dsn.end() ||
        !queue::wants_dsn(env.sender, asked->second.notify, queue::DsnAction::kDelivered, false))
      continue;
    queue::DsnRecipient d;
    d.final_recipient = r;
    d.original = asked->second.orcpt;
    d.action = queue::DsnAction::kDelivered;
    d.status = "2.0.0";
    d.diagnostic = "X-Postern; delivered to mailbox";
    d.explanation = "delivered to mailbox";
    in.recipients.push_back(std::move(d));
  }
  if (in.recipients.empty()) return;
  in.reporting_mta = local.myhostname();
  in.queue_id = env.queue_id;
  in.arrival = env.arrival;
  in.sender = env.sender;
  in.envid = env.envid;
  in.ret = env.ret;
  in.now = std::chrono::system_clock::now();
  in.size_limit = local.bounce_size_limit();
  std::string dsn = queue::compose_dsn(in, std::string(received_header) + std::string(content));
  send_dsn(local, spool, env.queue_id, env.sender, dsn);
}

}  // namespace

DeliveryOutcome deliver_and_queue(LocalDelivery& local, const queue::Spool& spool, const dkim::KeyTable* dkim,
                                  const queue::Envelope& received, std::string_view received_header,
                                  std::string_view content) {
  DeliveryOutcome out;
  // Local recipients whose aliases forward to other domains ("bob: bob@example.net"): those addresses join
  // the outbound recipients, each with the local recipient as its DSN original recipient (RFC 3461 ORCPT).
  // One that only forwards is no local recipient any more (no "delivered" report for it).
  queue::Envelope env = received;
  env.recipients.clear();
  for (const auto& r : received.recipients) {
    std::string local_part, domain;
    split_address(r, local_part, domain);
    Resolution res = local.resolve(local_part, domain);
    if (!res.mailboxes.empty() || res.forward.empty()) env.recipients.push_back(r);
    for (auto& f : res.forward) {
      log::info("local", "{}: to=<{}>, relay=local, status=sent (forwarded to {})", env.queue_id, r, f);
      if (std::find(env.outbound.begin(), env.outbound.end(), f) != env.outbound.end()) continue;
      queue::DsnRequest dsn;
      if (auto asked = received.dsn.find(r); asked != received.dsn.end()) dsn = asked->second;
      if (!dsn.orcpt) dsn.orcpt = smtp::proto::OriginalRecipient{"rfc822", r};
      env.dsn[f] = dsn;
      env.outbound.push_back(std::move(f));
    }
  }
  bool queued = !env.outbound.empty();
  if (queued) {
    queue::QueueFile q;
    q.queue_id = env.queue_id;
    q.arrival = env.arrival;
    q.sender = env.sender;
    q.client = env.client;
    q.envid = env.envid;
    q.ret = env.ret;
    q.requiretls = env.requiretls;
    for (const auto& r : env.outbound) {
      auto dsn = env.dsn.find(r);
      q.recipients.push_back(
          {r, queue::RecipientState::kPending, {}, dsn == env.dsn.end() ? queue::DsnRequest{} : dsn->second});
    }
    std::string signature = dkim ? dkim->sign(env, content) : std::string();
    if (!spool.write_incoming(q, {signature, received_header, content}, out.error)) {
      log::warning("queue", "{}: cannot queue: {}", env.queue_id, out.error.detail);
      return out;
    }
  }
  if (!env.recipients.empty()) {
    out = local.deliver(env, received_header, content);
    if (!out.error.ok()) {
      if (queued) spool.abort(env.queue_id);
      return out;
    }
  }
  if (queued) {
    if (!spool.commit(env.queue_id, out.error)) {
      log::warning("queue", "{}: cannot queue: {}{}", env.queue_id, out.error.detail,
                   env.recipients.empty() ? "" : " (the local recipients have their copy already)");
      return out;
    }
    uint64_t size = received_header.size() + content.size();
    log::info("qmgr", "{}: from=<{}>, size={}, nrcpt={} (queue active)", env.queue_id, env.sender, size,
              env.outbound.size());
    out.queued = true;
  }
  report_delivered(local, spool, env, received_header, content);
  return out;
}

bool send_dsn(LocalDelivery& local, const queue::Spool& spool, std::string_view about_queue_id,
              const std::string& to, std::string_view dsn) {
  queue::Envelope notice;  // from the null sender: no report about the report
  notice.queue_id = queue::new_queue_id();
  notice.arrival = std::chrono::system_clock::now();
  notice.client = "local";
  std::string local_part, domain;
  split_address(to, local_part, domain);
  if (local.resolve(local_part, domain).status == RcptStatus::kLocal) {
    notice.recipients = {to};
  } else {
    notice.outbound = {to};
  }
  std::string header = fmt::format("Received: by {}\n\tid {}; {}\n", local.myhostname(), notice.queue_id,
                                   rfc5322_date(notice.arrival));
  auto outcome = deliver_and_queue(local, spool, nullptr, notice, header, dsn);  // not DKIM-signed
  if (!outcome.error.ok()) {
    log::warning("bounce", "{}: cannot send the delivery status notification: {}", about_queue_id,
                 outcome.error.detail);
    return false;
  }
  log::info("bounce", "{}: sender delivery status notification: {}", about_queue_id, notice.queue_id);
  return true;
}

}  // namespace postern::delivery

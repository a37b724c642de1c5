// smtp/server/policy.cpp: restriction lists, mynetworks and the tables behind them (see policy.hpp).
// Security: a configuration that would relay for anyone (empty smtpd_relay_restrictions and no
// reject_unauth_destination in smtpd_recipient_restrictions) is refused at start, as Postfix refuses it.
#include "smtp/server/policy.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/strings.hpp"

namespace postern::smtp::server {
namespace {

using proto::Reply;

struct Named {
  std::string_view name;
  Restriction restriction;
};

constexpr Named kRestrictions[] = {
    {"permit", Restriction::kPermit},
    {"reject", Restriction::kReject},
    {"permit_mynetworks", Restriction::kPermitMynetworks},
    {"permit_sasl_authenticated", Restriction::kPermitSaslAuthenticated},
    {"permit_auth_destination", Restriction::kPermitAuthDestination},
    {"reject_unauth_destination", Restriction::kRejectUnauthDestination},
    {"defer_unauth_destination", Restriction::kDeferUnauthDestination},
    {"reject_sender_login_mismatch", Restriction::kRejectSenderLoginMismatch},
    {"reject_non_fqdn_recipient", Restriction::kRejectNonFqdnRecipient},
    {"reject_non_fqdn_sender", Restriction::kRejectNonFqdnSender},
    {"reject_unknown_recipient_domain", Restriction::kRejectUnknownRecipientDomain},
    {"reject_unknown_sender_domain", Restriction::kRejectUnknownSenderDomain},
    {"reject_unlisted_recipient", Restriction::kRejectUnlistedRecipient},
    {"reject_unauth_pipelining", Restriction::kRejectUnauthPipelining},
};

// "main.cf, line 12: submission/smtpd_recipient_restrictions", or the bare key for a default.
std::string where(const config::Config& c, std::string_view key, std::string_view service) {
  for (const std::string& k : {fmt::format("{}/{}", service, key), std::string(key)}) {
    auto it = c.entries().find(k);
    if (it != c.entries().end()) return fmt::format("{}, line {}: {}", c.file(), it->second.line, k);
  }
  return std::string(key);
}

bool set_for(const config::Config& c, std::string_view key, std::string_view service) {
  return c.is_set(key) || c.is_set(fmt::format("{}/{}", service, key));
}

Status add_networks(NetworkList& list, std::string_view text, const std::string& dir) {
  for (const auto& entry : split_list(text)) {
    if (entry.front() == '/' || entry.front() == '.') {
      std::string path = entry.front() == '/' ? entry : dir + "/" + entry;
      auto file = read_file(path);
      if (!file) return file.error();
      std::string content;
      for (auto line : split_lines(*file)) content += std::string(line.substr(0, line.find('#'))) + "\n";
      if (auto st = add_networks(list, content, dir); !st) return Error{path + ": " + st.error().message};
      continue;
    }
    auto n = parse_network(entry);
    if (!n) return n.error();
    list.add(*n);
  }
  return Ok{};
}

void style_networks(NetworkList& list, std::string_view style, const HostFacts& host) {
  for (const Network& iface : host.interfaces) {
    bool v4 = is_ipv4(iface.address);
    if (style == "host") {
      list.add(Network{iface.address, 128});
    } else if (style == "class" && v4) {
      uint8_t first = iface.address[12];
      list.add(network_of(iface.address, first < 128 ? 8 : first < 192 ? 16 : 24));
    } else {  // subnet; "class" for IPv6 is the subnet too, as in Postfix
      list.add(network_of(iface.address, v4 ? iface.prefix - 96 : iface.prefix));
    }
  }
}

Reply rcpt_reject(int code, std::string_view enhanced, std::string_view rcpt, std::string_view why) {
  return Reply(code, enhanced, fmt::format("<{}>: {}", rcpt, why));
}

}  // namespace

bool has_routing(std::string_view local_part) {
  return local_part.find_first_of("@%!") != std::string_view::npos;
}

bool is_fqdn(std::string_view domain) {
  return !domain.empty() && (domain.front() == '[' || domain.find('.') != std::string_view::npos);
}

bool domain_may_exist(std::string_view domain) {
  if (!domain.empty() && domain.front() == '[') return true;
  size_t dot = domain.rfind('.');
  return dot != std::string_view::npos && !iequals(domain.substr(dot + 1), "invalid");
}

Result<std::vector<Restriction>> Policy::parse_restrictions(const std::vector<std::string>& names) {
  std::vector<Restriction> out;
  for (const auto& name : names) {
    auto it = std::find_if(std::begin(kRestrictions), std::end(kRestrictions),
                           [&](const Named& n) { return n.name == name; });
    if (it == std::end(kRestrictions))
      return Error{fmt::format("unknown restriction \"{}\"", printable(name))};
    out.push_back(it->restriction);
  }
  return out;
}

Result<Policy> Policy::load(const config::Config& config, std::string_view service, const HostFacts& host) {
  Policy p;
  auto bad = [&](std::string_view key, std::string_view what) -> Result<Policy> {
    return Error{fmt::format("{}: {}", where(config, key, service), what)};
  };
  for (auto [key, list] : {std::pair{"smtpd_relay_restrictions", &p.relay_},
                           std::pair{"smtpd_recipient_restrictions", &p.recipient_}}) {
    auto parsed = parse_restrictions(config.get_list(key, service));
    if (!parsed) return bad(key, parsed.error().message);
    *list = std::move(*parsed);
  }
  auto stops_relaying = [](Restriction r) {
    return r == Restriction::kRejectUnauthDestination || r == Restriction::kDeferUnauthDestination ||
           r == Restriction::kReject;
  };
  if (p.relay_.empty() && std::none_of(p.recipient_.begin(), p.recipient_.end(), stops_relaying))
    return bad("smtpd_recipient_restrictions",
               "with smtpd_relay_restrictions empty, specify at least one of reject_unauth_destination, "
               "defer_unauth_destination or reject here (else anyone may relay)");

  std::string style = config.get("mynetworks_style", service);
  if (style != "host" && style != "subnet" && style != "class")
    return bad("mynetworks_style", fmt::format("\"{}\" is not host, subnet or class", printable(style)));
  if (!set_for(config, "mynetworks", service) && set_for(config, "mynetworks_style", service)) {
    style_networks(p.mynetworks_, style, host);
  } else if (auto st = add_networks(p.mynetworks_, config.get("mynetworks", service), config.dir()); !st) {
    return bad("mynetworks", st.error().message);
  }

  for (const auto& d : config.get_list("relay_domains", service)) {
    if (d.find_first_of("/:") != std::string::npos)
      return bad("relay_domains", fmt::format("\"{}\": only domain names are supported here", printable(d)));
    p.relay_domains_.insert(to_lower(d));
  }
  p.listening_ = host.listening;
  p.unknown_address_code_ = static_cast<int>(config.get_int("unknown_address_reject_code", service));
  if (p.unknown_address_code_ < 400 || p.unknown_address_code_ > 599)
    return bad("unknown_address_reject_code", "must be a 4xx or 5xx reply code");

  for (const auto& m : config.get_list("smtpd_sender_login_maps", service)) {
    std::string path = delivery::table_path(m);
    if (path.empty()) return bad("smtpd_sender_login_maps", fmt::format("unsupported table type \"{}\"", m));
    if (path[0] != '/') path = config.dir() + "/" + path;
    if (::access(path.c_str(), R_OK) != 0)
      return bad("smtpd_sender_login_maps", fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    p.login_maps_.push_back(std::make_shared<delivery::AliasTable>(path, delivery::TableFormat::kVirtual));
  }
  return p;
}

bool Policy::is_relay_domain(std::string_view domain) const {
  std::string d = to_lower(domain);
  if (relay_domains_.count(d)) return true;
  // ".example.org" in relay_domains also covers its subdomains.
  for (size_t dot = d.find('.'); dot != std::string::npos; dot = d.find('.', dot + 1))
    if (relay_domains_.count(d.substr(dot))) return true;
  return false;
}

bool Policy::is_our_literal(std::string_view domain) const {
  if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return false;
  std::string_view inner = domain.substr(1, domain.size() - 2);
  if (istarts_with(inner, "IPv6:"))
    inner.remove_prefix(5);
  else if (inner.find(':') != std::string_view::npos)
    return false;  // a general literal, or IPv6 untagged
  auto ip = parse_ip(inner);
  return ip && std::find(listening_.begin(), listening_.end(), *ip) != listening_.end();
}

std::vector<std::string> Policy::owners(std::string_view sender) const {
  std::string s = to_lower(sender);
  size_t at = s.rfind('@');
  for (const auto& table : login_maps_) {
    if (auto hit = table->find(s)) return *hit;
    if (at != std::string::npos)
      if (auto hit = table->find(s.substr(at))) return *hit;
  }
  return {};
}

bool Policy::listed_owner(std::string_view login, std::string_view sender) const {
  auto list = owners(sender);
  return std::any_of(list.begin(), list.end(), [&](const std::string& o) { return iequals(o, login); });
}

bool Policy::has_listed_owner(std::string_view sender) const {
  return !owners(sender).empty();
}

Verdict Policy::unknown_domain(bool recipient, std::string_view address, std::string_view domain,
                               bool may_exist, const std::optional<dns::MailDomain>& dns,
                               std::optional<Reply>& deferred) const {
  std::string_view what = recipient ? "Recipient" : "Sender";
  std::string_view enhanced = recipient ? "1.2" : "1.8";
  auto found = may_exist ? dns : dns::MailDomain::kNotFound;
  if (!found) {
    if (!domain.empty() && domain.front() == '[') return {};  // an address literal: nothing to look up
    return Verdict{std::nullopt, std::string(domain)};
  }
  auto not_found = [&](int code) {
    return rcpt_reject(code, fmt::format("{}.{}", code / 100, enhanced), address,
                       fmt::format("{} address rejected: Domain not found", what));
  };
  switch (*found) {
    case dns::MailDomain::kExists:
      break;
    case dns::MailDomain::kNotFound:
      return Verdict{not_found(unknown_address_code_), {}};
    case dns::MailDomain::kNullMx:  // RFC 7505 4.3 (recipient) and 4.2 (sender)
      return Verdict{rcpt_reject(recipient ? 556 : 550, recipient ? "5.1.10" : "5.7.27", address,
                                 fmt::format("{} address rejected: Domain {} does not accept mail (nullMX)",
                                             what, domain)),
                     {}};
    case dns::MailDomain::kTempFail:
      if (!deferred) deferred = not_found(450);
      break;
  }
  return {};
}

Verdict Policy::evaluate(const std::vector<Restriction>& list, const RcptFacts& f,
                         std::optional<Reply>& deferred) const {
  bool auth_destination = (f.ours || f.relay_domain) && !f.routed;
  auto refuse = [](Reply r) { return Verdict{std::move(r), {}}; };
  for (Restriction r : list) {
    switch (r) {
      case Restriction::kPermit:
        return {};
      case Restriction::kReject:
        return refuse(rcpt_reject(554, "5.7.1", f.recipient, "Recipient address rejected: Access denied"));
      case Restriction::kPermitMynetworks:
        if (f.trusted_client) return {};
        break;
      case Restriction::kPermitSaslAuthenticated:
        if (!f.login.empty()) return {};
        break;
      case Restriction::kPermitAuthDestination:
        if (auth_destination) return {};
        break;
      case Restriction::kRejectUnauthDestination:
        if (!auth_destination) return refuse(relay_denied_reply(f.recipient));
        break;
      case Restriction::kDeferUnauthDestination:
        if (!auth_destination) return refuse(rcpt_reject(454, "4.7.1", f.recipient, "Relay access denied"));
        break;
      case Restriction::kRejectSenderLoginMismatch:
        if (f.sender.empty()) break;
        if (!f.login.empty() && !f.sender_owned())
          return refuse(rcpt_reject(553, "5.7.1", f.sender,
                                    fmt::format("Sender address rejected: not owned by user {}", f.login)));
        if (f.login.empty() && has_listed_owner(f.sender))
          return refuse(rcpt_reject(553, "5.7.1", f.sender, "Sender address rejected: not logged in"));
        break;
      case Restriction::kRejectNonFqdnRecipient:
        if (!f.recipient_fqdn)
          return refuse(rcpt_reject(504, "5.5.2", f.recipient,
                                    "Recipient address rejected: need fully-qualified address"));
        break;
      case Restriction::kRejectNonFqdnSender:
        if (!f.sender.empty() && !f.sender_fqdn)
          return refuse(
              rcpt_reject(504, "5.5.2", f.sender, "Sender address rejected: need fully-qualified address"));
        break;
      case Restriction::kRejectUnknownRecipientDomain:
        if (f.ours) break;
        if (auto v = unknown_domain(true, f.recipient, f.recipient_domain, f.domain_may_exist,
                                    f.recipient_dns, deferred);
            v.reply || !v.lookup.empty())
          return v;
        break;
      case Restriction::kRejectUnknownSenderDomain:
        if (f.sender.empty() || f.sender_ours) break;
        if (auto v = unknown_domain(false, f.sender, f.sender_domain, domain_may_exist(f.sender_domain),
                                    f.sender_dns, deferred);
            v.reply || !v.lookup.empty())
          return v;
        break;
      case Restriction::kRejectUnlistedRecipient:
        if (f.ours && f.unknown_user) return refuse(unknown_user_reply(f.recipient));
        break;
      case Restriction::kRejectUnauthPipelining:
        break;
    }
  }
  return {};
}

Verdict Policy::check_rcpt(const RcptFacts& facts) const {
  // A permit in the relay list only ends that list: the recipient list is still asked.
  std::optional<Reply> deferred;
  for (const auto* list : {&relay_, &recipient_})
    if (auto v = evaluate(*list, facts, deferred); v.reply || !v.lookup.empty()) return v;
  return Verdict{std::move(deferred), {}};
}

Reply relay_denied_reply(std::string_view rcpt) {
  return rcpt_reject(554, "5.7.1", rcpt, "Relay access denied");
}

Reply unknown_user_reply(std::string_view rcpt) {
  return rcpt_reject(550, "5.1.1", rcpt, "Recipient address rejected: User unknown");
}

}  // namespace postern::smtp::server

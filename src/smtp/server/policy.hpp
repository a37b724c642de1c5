// smtp/server/policy.hpp: Postfix's relay and recipient restrictions, decided at RCPT: mynetworks (and
// mynetworks_style), smtpd_relay_restrictions then smtpd_recipient_restrictions (the first permit or reject
// of a list decides it; a list that ends without one permits), relay_domains and smtpd_sender_login_maps.
// Evaluation is pure: the session states the facts (RcptFacts) and gets a reply to refuse with, or nothing,
// or a domain to look up in DNS first (reject_unknown_recipient_domain, reject_unknown_sender_domain: only a
// list that reaches one of these asks, and only for a domain that is not ours).
// Security: the facts come from untrusted addresses. A local part holding '@', '%' or '!' (sender-specified
// routing, judged after quote removal) never makes a destination authorized, as Postfix's
// reject_unauth_destination decides with allow_untrusted_routing = no.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/cidr.hpp"
#include "base/result.hpp"
#include "config/config.hpp"
#include "delivery/aliases.hpp"
#include "dns/resolver.hpp"
#include "smtp/proto/reply.hpp"

namespace postern::smtp::server {

// The services that speak SMTP and so have a policy of their own (SERVICE/smtpd_... overrides).
constexpr std::string_view kSmtpServices[] = {"smtp", "submission", "submissions"};

enum class Restriction {
  kPermit,
  kReject,
  kPermitMynetworks,
  kPermitSaslAuthenticated,
  kPermitAuthDestination,
  kRejectUnauthDestination,
  kDeferUnauthDestination,
  kRejectSenderLoginMismatch,
  kRejectNonFqdnRecipient,
  kRejectNonFqdnSender,
  kRejectUnknownRecipientDomain,
  kRejectUnknownSenderDomain,
  kRejectUnlistedRecipient,
  kRejectUnauthPipelining,  // the session already refuses unannounced pipelining: nothing more to do here
};

// What the restrictions look at, for one RCPT TO.
struct RcptFacts {
  std::string recipient;        // for replies and logs
  std::string sender;           // empty: the null sender
  std::string login;            // the SASL login; empty: not authenticated
  bool trusted_client = false;  // the client address is in mynetworks
  bool recipient_fqdn = true;   // as received: a domain with a dot, or an address literal
  bool sender_fqdn = true;
  bool ours = false;          // we are the final destination of the domain (or it is our address literal)
  bool relay_domain = false;  // in relay_domains
  bool routed = false;        // sender-specified routing in the local part
  bool unknown_user = false;  // ours, and no such user
  bool domain_may_exist = true;
  bool sender_ours = false;  // we are the final destination of the sender's domain
  std::string recipient_domain, sender_domain;
  // What DNS said of each domain (dns::mail_domain); nothing: not looked up yet.
  std::optional<dns::MailDomain> recipient_dns, sender_dns;
  std::function<bool()> sender_owned;  // may `login` send as `sender`? (asked only when needed)
};

// What the restrictions decided for one RCPT TO.
struct Verdict {
  std::optional<proto::Reply> reply;  // refuse the recipient with this
  std::string lookup;  // else, when not empty: learn what DNS says of this domain, then ask again
};

// What the host knows about itself: for mynetworks_style and for address literals ("user@[192.0.2.1]" is ours
// only when 192.0.2.1 is an address we listen on).
struct HostFacts {
  std::vector<Network> interfaces;  // each interface address with its netmask
  std::vector<IpBytes> listening;   // SMTP listener addresses, wildcards expanded
};

class Policy {
 public:
  // Reads the restrictions and tables for `service` ("smtp", "submission": SERVICE/key overrides apply).
  // Errors name the file, line and key: an unknown restriction, a bad network, a missing table.
  static Result<Policy> load(const config::Config& config, std::string_view service, const HostFacts& host);
  // One restriction list, e.g. "permit_mynetworks, reject_unauth_destination".
  static Result<std::vector<Restriction>> parse_restrictions(const std::vector<std::string>& names);

  Verdict check_rcpt(const RcptFacts& facts) const;

  bool trusted(std::string_view client_ip) const { return mynetworks_.contains(client_ip); }
  bool is_relay_domain(std::string_view domain) const;
  // "[192.0.2.1]" or "[IPv6:2001:db8::1]" naming an address we listen on.
  bool is_our_literal(std::string_view domain) const;
  // smtpd_sender_login_maps: `login` is listed as an owner of `sender` (by address or by @domain).
  bool listed_owner(std::string_view login, std::string_view sender) const;
  bool has_listed_owner(std::string_view sender) const;

  const NetworkList& mynetworks() const { return mynetworks_; }

 private:
  // The reply of the list's first reject, or the lookup it needs first; nothing when a permit or the end of
  // the list comes first. A temporary DNS failure is Postfix's defer_if_permit (unknown_address_tempfail_
  // action): kept in `deferred`, it is the answer unless a later restriction rejects.
  Verdict evaluate(const std::vector<Restriction>& list, const RcptFacts& f,
                   std::optional<proto::Reply>& deferred) const;
  // reject_unknown_{recipient,sender}_domain for one address.
  Verdict unknown_domain(bool recipient, std::string_view address, std::string_view domain, bool may_exist,
                         const std::optional<dns::MailDomain>& dns,
                         std::optional<proto::Reply>& deferred) const;
  std::vector<std::string> owners(std::string_view sender) const;

  std::vector<Restriction> relay_;
  std::vector<Restriction> recipient_;
  NetworkList mynetworks_;
  std::set<std::string> relay_domains_;
  std::vector<IpBytes> listening_;
  std::vector<std::shared_ptr<delivery::AliasTable>> login_maps_;
  int unknown_address_code_ = 450;  // unknown_address_reject_code
};

// "554 5.7.1 <rcpt>: Relay access denied".
proto::Reply relay_denied_reply(std::string_view rcpt);
// "550 5.1.1 <rcpt>: Recipient address rejected: User unknown".
proto::Reply unknown_user_reply(std::string_view rcpt);

// Address facts, as Postfix judges them.
bool has_routing(std::string_view local_part);
bool is_fqdn(std::string_view domain);
// Without DNS: false only for names that cannot exist (one label, or under .invalid, RFC 6761 6.4); these
// are never looked up.
bool domain_may_exist(std::string_view domain);

}  // namespace postern::smtp::server

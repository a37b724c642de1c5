// delivery/local.hpp: the local delivery agent: which addresses are ours (mydestination: system users and
// aliases; virtual_mailbox_domains: passwd_file users) and durable delivery into their Maildirs.
// A message for several mailboxes is written to all of them (tmp/ + fsync) before any is committed (rename +
// fsync of new/): a failure leaves no copy anywhere, so a 4xx reply never causes duplicates.
// Thread-safe: deliver() runs on the delivery threads, resolve() on the I/O thread.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "auth/passwd_file.hpp"
#include "config/config.hpp"
#include "delivery/aliases.hpp"
#include "delivery/privileged.hpp"
#include "queue/envelope.hpp"
#include "queue/spool.hpp"
#include "store/error.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::dkim {
class KeyTable;
}

namespace postern::delivery {

struct Mailbox {
  std::string address;  // the final address, for Delivered-To and logs
  std::string maildir;
  store::maildir::Owner owner;
  std::string system_user;  // set for a system user's mailbox (written by the privileged helper, if any)
};

enum class RcptStatus {
  kLocal,         // deliverable here
  kUnknownUser,   // our domain, no such user: 550 5.1.1
  kNotOurDomain,  // relaying: refused until outbound delivery exists
  kUnsupported,   // an alias to a command, file, include or remote address: not deliverable here yet
  kMailboxFull,   // mailbox_size_limit reached already
  kLookupFailed,  // the user table (passwd_file) cannot be read now: 451 4.3.0, the client retries
};

struct Resolution {
  RcptStatus status = RcptStatus::kUnknownUser;
  std::vector<Mailbox> mailboxes;
  std::vector<std::string> forward;  // addresses of other domains an alias expands to (outbound queue)
  std::string detail;
};

struct DeliveryOutcome {
  store::StoreError error;  // kNone: delivered to every mailbox
  bool queued = false;      // deliver_and_queue: outbound recipients went into the queue (wake the manager)
};

class LocalDelivery {
 public:
  explicit LocalDelivery(const config::Config& config);

  // Resolves "local@domain" (domain already set; lower-cased inside).
  Resolution resolve(std::string_view local, std::string_view domain);
  // Writes `content` (with the given header lines prepended per mailbox) to every recipient's mailbox.
  DeliveryOutcome deliver(const queue::Envelope& envelope, std::string_view received_header,
                          std::string_view content);
  // The mailbox that belongs to a login name ("alice" or "alice@example.org"), ignoring aliases.
  Resolution mailbox_of(std::string_view user);
  // System users' mailboxes are written through `helper` (the server runs without root).
  void set_privileged_helper(PrivilegedHelper* helper) { helper_ = helper; }
  // Whether `address` reaches the mailbox of the user `login` (their own address, an extension of it, or an
  // alias that includes them): the addresses a user may send as.
  bool owns(std::string_view login, std::string_view address);
  bool is_local_domain(std::string_view domain) const;
  bool is_virtual_domain(std::string_view domain) const;
  const std::string& myorigin() const { return myorigin_; }
  const std::string& myhostname() const { return myhostname_; }
  uint64_t bounce_size_limit() const { return bounce_size_limit_; }

 private:
  // `no_alias`: the address is an alias's own target ("alice: alice, archive"): no alias lookup again.
  Resolution resolve_depth(std::string_view local, std::string_view domain, int depth, bool no_alias);
  // Resolves an alias's targets (for `key`) into mailboxes, without duplicates.
  Resolution expand(const std::string& key, const std::vector<std::string>& targets, int depth);
  Resolution resolve_system(const std::string& user, const std::string& address);

  std::set<std::string> mydestination_;
  std::set<std::string> virtual_domains_;
  std::string myhostname_;
  std::string myorigin_;
  std::string home_mailbox_;
  std::string virtual_base_;
  std::string delimiter_;
  uint64_t mailbox_size_limit_;
  uint64_t bounce_size_limit_;
  std::vector<std::unique_ptr<AliasTable>> aliases_;
  std::vector<std::unique_ptr<AliasTable>> virtual_aliases_;
  std::set<std::string> virtual_alias_domains_;
  auth::PasswdFile passwd_;
  PrivilegedHelper* helper_ = nullptr;
};

// A received message: env.outbound goes into the queue, env.recipients into their mailboxes, and success only
// when both are durable. Order: queue file into incoming/ (fsync), local delivery, queue file into deferred/.
// A failure removes the queue file; a crash leaves it in incoming/, never acknowledged. The queued copy gets
// a DKIM signature from `dkim` (if not null) when the message is from one of its domains.
// Then local recipients that asked NOTIFY=SUCCESS (RFC 3461) are reported "delivered" to the sender, as
// Postfix's local(8) does: the DSN goes the same way, into the sender's mailbox or the queue. A local
// recipient whose alias forwards to another domain has those addresses queued too (its NOTIFY goes with
// them, the recipient itself becomes their ORCPT).
DeliveryOutcome deliver_and_queue(LocalDelivery& local, const queue::Spool& spool, const dkim::KeyTable* dkim,
                                  const queue::Envelope& env, std::string_view received_header,
                                  std::string_view content);

// Sends a DSN (queue/dsn.hpp: compose_dsn) about the message `about_queue_id` to `to` from the null sender:
// into `to`'s mailbox when it is local, else into the outbound queue. Logs the outcome as Postfix's bounce(8)
// does ("sender delivery status notification: <new id>"); false when it could not be sent.
bool send_dsn(LocalDelivery& local, const queue::Spool& spool, std::string_view about_queue_id,
              const std::string& to, std::string_view dsn);

}  // namespace postern::delivery

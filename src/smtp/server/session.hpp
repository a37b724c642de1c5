// smtp/server/session.hpp: one SMTP server session (RFC 5321) as a pure state machine: commands in, replies
// and the next step out. The net/ driver does all I/O: it feeds lines, reads DATA/BDAT content into content()
// and runs deliveries; nothing here touches a socket or a file.
// Security: every input is untrusted; errors are counted (smtpd_soft/hard_error_limit), unknown recipients
// and, past smtpd_junk_command_limit, NOOP/VRFY/RSET included, so that RCPT and VRFY cannot enumerate users
// quickly; the relay policy (policy.hpp) decides every RCPT, after a DNS lookup by the driver when it asks
// for one (Next::kLookup); the transaction is forgotten on RSET, HELO/EHLO
// and after each message. AUTH (RFC 4954) runs through auth::sasl::Exchange.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/sasl/exchange.hpp"
#include "config/config.hpp"
#include "delivery/local.hpp"
#include "queue/envelope.hpp"
#include "smtp/proto/command.hpp"
#include "smtp/proto/data_reader.hpp"
#include "smtp/proto/reply.hpp"
#include "smtp/server/policy.hpp"
#include "store/error.hpp"
#include "tls/info.hpp"

namespace postern::smtp::server {

// smtpd_tls_security_level: none (no STARTTLS), may (offered), encrypt (required before mail or AUTH).
enum class TlsLevel { kNone, kMay, kEncrypt };

// The settings a session uses, read once from the configuration when the session starts.
struct Settings {
  std::string hostname;
  std::string banner;
  std::string mail_name;
  std::string myorigin;
  uint64_t message_size_limit = 10240000;
  size_t recipient_limit = 1000;
  int soft_error_limit = 10;
  int hard_error_limit = 20;
  int junk_command_limit = 100;
  size_t line_length_limit = 2048;
  int hopcount_limit = 50;
  bool disable_vrfy = false;
  bool helo_required = false;
  bool smtputf8 = true;
  TlsLevel tls_level = TlsLevel::kNone;  // smtpd_tls_security_level; kNone also when no certificate loaded
  // SMTP AUTH (RFC 4954).
  bool sasl_enabled = false;               // smtpd_sasl_auth_enable
  bool broken_sasl_auth_clients = false;   // also the obsolete "AUTH=LOGIN PLAIN" line
  bool sasl_authenticated_header = false;  // the login in the Received: header
  bool sasl_noplaintext = false;           // smtpd_sasl_security_options = noplaintext: PLAIN/LOGIN too weak
  auth::sasl::Options sasl;                // before TLS (auth::sasl_options)
  std::shared_ptr<const Policy> policy;  // required; not read by from_config (loaded once per configuration)

  // `tls_available`: the server has a certificate for this service.
  static Settings from_config(const config::Config& config, std::string_view service, bool tls_available);
};

struct Client {
  std::string address;           // "127.0.0.1"
  std::string name = "unknown";  // reverse DNS name, when looked up
  std::string log_name() const { return name + "[" + address + "]"; }
};

// Whether an address is deliverable: implemented by delivery::LocalDelivery in production.
using RecipientCheck = std::function<delivery::Resolution(std::string_view local, std::string_view domain)>;
// Whether the user `login` owns `address` (it reaches their mailbox: their own address or an alias).
using SenderOwner = std::function<bool(std::string_view login, std::string_view address)>;

enum class Next {
  kCommand,   // read the next command line
  kData,      // read DATA content with a DataReader until CRLF.CRLF, then call data_done()
  kBdat,      // read exactly bdat_size bytes into content() (or discard them), then call bdat_done()
  kAuth,      // read one line (an AUTH response) and pass it to auth_line()
  kDeliver,   // run the delivery of envelope() + content(), then call delivered()
  kLookup,    // ask DNS what it says of the domain Step::lookup (dns::mail_domain), then call looked_up()
  kStartTls,  // send the replies, drop unread input, run the TLS handshake, then call set_tls()
  kClose,     // send the replies, then close the connection
};

struct Step {
  std::vector<proto::Reply> replies;
  Next next = Next::kCommand;
  uint64_t bdat_size = 0;
  bool bdat_discard = false;  // the chunk is read but not kept (the transaction failed)
  bool delay = false;         // the soft error limit is reached: pause before replying
  std::string lookup;         // Next::kLookup: the domain
};

class Session {
 public:
  Session(Settings settings, Client client, RecipientCheck check);

  // SMTP AUTH checks passwords with `credentials` (which must outlive the session); without, AUTH is off.
  void set_credentials(auth::sasl::Credentials& credentials) { credentials_ = &credentials; }

  proto::Reply greeting() const;
  // One command line. `more_pending`: further bytes arrived with it (pipelined), which is refused after
  // commands that must end a group (RFC 2920 3.1) or when PIPELINING was not negotiated.
  Step command(std::string_view line, bool more_pending);
  // Whether command() may block on this line (AUTH with an initial response hashes a password): the driver
  // runs it off the I/O thread.
  static bool may_block(std::string_view line);
  Step line_too_long();
  // The client talked before the greeting.
  Step pregreet();
  // A client response line in an AUTH exchange. Blocking (password hashing): run it off the I/O thread.
  Step auth_line(std::string_view line);
  // The SASL login name after a successful AUTH; empty before.
  const std::string& sasl_user() const { return sasl_user_; }

  // DATA and BDAT content accumulates here (LF line ends).
  std::string& content() { return content_; }
  proto::DataReader& data_reader() { return *data_reader_; }
  Step data_done();
  // Bytes of the current BDAT chunk (any part of it; the driver reads exactly bdat_size bytes in all).
  void bdat_feed(std::string_view bytes);
  Step bdat_done();
  // What DNS said of the domain of Next::kLookup: the RCPT that asked is decided again with it.
  Step looked_up(dns::MailDomain found);

  // The message to deliver (valid after Next::kDeliver).
  const queue::Envelope& envelope() const { return envelope_; }
  std::string received_header() const;
  Step delivered(const store::StoreError& error);

  // The connection is now encrypted (implicit TLS, or STARTTLS done). RFC 3207 4.2: everything learned
  // before is forgotten; the client must send EHLO again.
  void set_tls(const tls::Info& info);
  const tls::Info& tls() const { return tls_; }

  const Client& client() const { return client_; }
  // Failed guesses so far, and the login name of the last one (the driver throttles them: auth/throttle):
  // failed AUTH exchanges, and RCPT to unknown users from clients neither trusted nor authenticated.
  int auth_failures() const { return auth_failures_; }
  const std::string& failed_login() const { return failed_login_; }
  // A client authenticated by other means than AUTH (tests; later e.g. a TLS client certificate).
  void set_sasl_user(std::string user) { sasl_user_ = std::move(user); }
  void set_sender_owner(SenderOwner owner) { owner_ = std::move(owner); }
  // "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6", as Postfix logs it at disconnect.
  std::string command_summary() const;
  bool in_transaction() const { return mail_given_; }

 private:
  Step reply(proto::Reply r, Next next = Next::kCommand);
  Step error(proto::Reply r);
  // Counts an error against the limits: the soft limit delays the reply, the hard one ends the session.
  Step penalize(Step s);
  bool sender_owned() const;
  void count(std::string_view verb, bool ok);
  void reset_transaction();

  Step on_helo(const proto::Command& c, bool extended);
  Step on_mail(const proto::Command& c);
  Step on_rcpt(const proto::Command& c);
  // The policy's part of RCPT; run again after each DNS lookup it asks for.
  Step rcpt_policy(const proto::Command& c);
  Step on_data();
  Step on_bdat(const proto::Command& c);
  Step on_vrfy();
  Step on_starttls(const proto::Command& c);
  Step on_auth(const proto::Command& c);
  Step sasl_outcome(auth::sasl::Outcome outcome);
  auth::sasl::Options sasl_options() const { return auth::sasl::for_connection(settings_.sasl, tls_); }
  // The message is complete: refuse mail loops, else deliver.
  Step ready_to_deliver();

  Settings settings_;
  Client client_;
  RecipientCheck check_;
  auth::sasl::Credentials* credentials_ = nullptr;
  SenderOwner owner_;
  bool trusted_ = false;  // the client is in mynetworks

  // Session state.
  tls::Info tls_;
  std::string helo_;
  bool esmtp_ = false;
  int errors_ = 0;
  int junk_commands_ = 0;                              // NOOP, VRFY, RSET since the last message
  std::map<std::string, std::pair<int, int>> counts_;  // verb -> (ok, total), in Postfix's order on output
  std::unique_ptr<auth::sasl::Exchange> sasl_;
  std::string sasl_user_, sasl_method_;
  int auth_failures_ = 0;
  std::string failed_login_;
  std::map<std::string, dns::MailDomain> dns_answers_;  // by domain (lower case), for the whole session
  std::optional<proto::Command> pending_rcpt_;          // waits for the answer of Next::kLookup
  std::string pending_lookup_;

  // Transaction state.
  bool mail_given_ = false;
  bool smtputf8_ = false;
  bool sender_fqdn_ = true;
  bool bdat_active_ = false;
  bool bdat_failed_ = false;
  bool last_chunk_ = false;
  int rcpt_attempts_ = 0;
  queue::Envelope envelope_;
  std::string content_;
  std::optional<proto::DataReader> data_reader_;
  proto::CrlfToLf bdat_normalizer_;
  uint64_t bdat_bytes_ = 0;
};

// How a storage error is answered (the one place SMTP maps store errors).
proto::Reply delivery_reply(const store::StoreError& error, std::string_view queue_id);

}  // namespace postern::smtp::server

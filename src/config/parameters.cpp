#include "config/parameters.hpp"

#include <algorithm>
#include <array>

namespace postern::config {
namespace {

using enum Type;

// Keep sorted by name: postconf prints in this order and lookups use binary search.
constexpr std::array kParameters = std::to_array<Parameter>({
    {"alias_maps", kList, "hash:/etc/aliases",
     "alias tables in /etc/aliases format (hash:PATH or PATH; the text file itself is read)", true},
    {"anvil_rate_time_unit", kTime, "60s", "the time unit of the connection rate limits (Postfix)", true},
    {"auth_failure_block_count", kInt, "10",
     "failed logins from one address, within auth_failure_block_time, after which it is blocked; 0: never "
     "(Postern)",
     true},
    {"auth_failure_block_time", kTime, "10m",
     "how long failed logins are remembered, and how long a blocked address stays blocked (Postern)", true},
    {"auth_failure_delay", kTime, "2s",
     "wait before answering a failed login; doubles with each further failure of the address or user, at "
     "most "
     "15s (Dovecot)",
     true},
    {"auth_mechanisms", kList, "plain login scram-sha-256 scram-sha-256-plus",
     "SASL mechanisms of SMTP AUTH, IMAP and POP3 (Dovecot): plain, login, cram-md5 (needs {PLAIN} "
     "passwords), scram-sha-256, scram-sha-256-plus (offered only over TLS, tls-exporter binding)",
     true},
    {"auth_pam_service", kString, "postern",
     "PAM service that checks system users' passwords when /etc/pam.d/<service> exists; else shadow + crypt "
     "(Postern)",
     true},
    {"bounce_queue_lifetime", kTime, "5d",
     "how long a bounce (null sender) stays in the queue before it is given up", true},
    {"bounce_size_limit", kSize, "50000",
     "largest original message returned whole in a delivery status notification; a larger one is returned as "
     "its header only (Postfix)",
     true},
    {"broken_sasl_auth_clients", kBool, "no", "also announce AUTH in the obsolete AUTH=LOGIN PLAIN form",
     true},
    {"default_destination_concurrency_limit", kInt, "20",
     "deliveries to one destination (domain or relayhost) at a time", true},
    {"default_destination_rate_delay", kTime, "0s",
     "pause between the start of two deliveries to one destination (one at a time when set); 0: no pause",
     true},
    {"default_destination_recipient_limit", kInt, "50",
     "recipients of one message sent to one destination per delivery (per SMTP transaction)", true},
    {"delay_warning_time", kTime, "0h",
     "after this long in the queue the sender is warned that the message is delayed; 0: never", true},
    {"delivery_threads", kInt, "16", "threads that write and fsync mail into Maildirs (Postern)", true},
    {"disable_plaintext_auth", kBool, "yes", "refuse plaintext logins before TLS (Dovecot)", true},
    {"disable_vrfy_command", kBool, "no", "refuse VRFY with 502 instead of answering 252", true},
    {"dns_servers", kList, "",
     "DNS servers to send every query to: address, address:port or [v6]:port; empty: those of "
     "/etc/resolv.conf (Postern)",
     true},
    {"dnssec_trust_anchor_file", kString, "/usr/share/dns/root.key",
     "DNSSEC trust anchor(s) (DNSKEY or DS records, zone file format) of the validating lookups DANE makes; "
     "read at the first such lookup, so mail_owner must be able to read it (Postern)",
     true},
    {"home_mailbox", kString, "Maildir/",
     "mailbox of a system user, relative to the home directory; must end in / (Maildir)", true},
    {"hopcount_limit", kInt, "50", "Received: headers after which a message is refused as a mail loop", true},
    {"imap_connection_limit", kInt, "10000", "simultaneous IMAP connections in all (Postern)", true},
    {"imap_default_folders", kList, "Drafts, Sent, Trash, Templates",
     "folders created and subscribed at a user's first login; Drafts, Sent, Trash, Junk, Archive get their "
     "SPECIAL-USE attribute (Postern)",
     true},
    {"imap_hierarchy_separator", kString, "/", "IMAP hierarchy separator (Dovecot's namespace separator)",
     true},
    {"imap_idle_timeout", kTime, "30m", "inactivity (IDLE included) after which an IMAP session is closed",
     true},
    {"imap_listen", kList, "143", "IMAP listener(s) (Postern)", true},
    {"imap_login_timeout", kTime, "60s", "time an IMAP client has to log in, per command (Postern)", true},
    {"imap_max_line_length", kSize, "65536", "longest IMAP command line, literals excluded (Dovecot)", true},
    {"imap_metadata", kBool, "yes",
     "offer IMAP METADATA (RFC 5464), kept in each mailbox's postern-metadata file (Dovecot's name; Dovecot "
     "needs mail_attribute_dict besides and so defaults to no)",
     true},
    {"imap_metadata_max_entries", kInt, "256",
     "METADATA entries one mailbox (or the server, per user) may hold, /private and /shared together "
     "(Postern)",
     true},
    {"imap_metadata_max_size", kSize, "65536", "largest value of one METADATA entry, in bytes (Postern)",
     true},
    {"imaps_listen", kList, "993", "IMAP over implicit TLS listener(s) (Postern)", true},
    {"inet_interfaces", kList, "all",
     "addresses a bare-port listener binds: all, loopback-only, or addresses", true},
    {"inet_protocols", kList, "all", "IP protocols to use: all, ipv4, ipv6", true},
    {"io_threads", kInt, "0", "threads that run the network side (TLS included); 0: one per CPU (Postern)",
     true},
    {"line_length_limit", kInt, "2048", "longest SMTP command line accepted, in bytes", true},
    {"login_client_connection_count_limit", kInt, "100",
     "IMAP (and, separately, POP3) connections open at once from one address; 0: no limit (Postern)", true},
    {"login_client_connection_rate_limit", kInt, "0",
     "new IMAP (POP3) connections from one address per anvil_rate_time_unit; 0: no limit (Postern)", true},
    {"mail_location", kString, "maildir:~/Maildir",
     "where a user's mail is (Dovecot); home_mailbox for delivery", false},
    {"mail_max_userip_connections", kInt, "10",
     "logged-in IMAP sessions of one user from one address; 0: no limit (Dovecot)", true},
    {"mail_name", kString, "Postern", "the name the server calls itself in the banner and Received headers",
     true},
    {"mail_owner", kString, "postern",
     "unprivileged user the network-facing code runs as when started as root", false},
    {"mail_server_admin", kString, "",
     "how to reach the administrator (a mailto: or tel: URI): the server's METADATA /shared/admin (Dovecot)",
     true},
    {"mail_server_comment", kString, "", "the server's METADATA /shared/comment (Dovecot)", true},
    {"mailbox_size_limit", kSize, "51200000", "largest Maildir a delivery may grow, in bytes; 0: no limit",
     true},
    {"maillog_file", kString, "", "log file of the background daemon; empty: syslog", true},
    {"maximal_backoff_time", kTime, "4000s",
     "the longest wait between two delivery attempts of a deferred message", true},
    {"maximal_queue_lifetime", kTime, "5d",
     "how long a message is retried before it is returned to the sender", true},
    {"message_size_limit", kSize, "10240000", "largest message accepted, in bytes; 0: no limit", true},
    {"minimal_backoff_time", kTime, "300s",
     "the shortest wait between two delivery attempts of a deferred message; also how long a failed "
     "destination is left alone",
     true},
    {"mydestination", kList, "$myhostname, localhost.$mydomain, localhost",
     "domains delivered to system users (and aliases)", true},
    {"mydomain", kString, "!mydomain", "this host's domain: myhostname less its first label", true},
    {"myhostname", kString, "!myhostname", "this host's fully qualified name", true},
    {"mynetworks", kList, "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
     "trusted clients (permit_mynetworks): networks, addresses, /file names; unset with mynetworks_style "
     "set: "
     "computed from the interfaces",
     true},
    {"mynetworks_style", kString, "host",
     "host, subnet or class: the interface networks trusted when mynetworks is not set but this is", true},
    {"myorigin", kString, "$myhostname", "domain appended to addresses without one", true},
    {"passwd_file", kString, "users", "virtual users, Dovecot passwd-file format (Postern)", true},
    {"pop3_idle_timeout", kTime, "10m",
     "inactivity after which a POP3 session is closed (RFC 1939: 10 minutes)", true},
    {"pop3_listen", kList, "110", "POP3 listener(s) (Postern)", true},
    {"pop3s_listen", kList, "995", "POP3 over implicit TLS listener(s) (Postern)", true},
    {"queue_directory", kString, "/var/spool/postern", "the queue and runtime state (pid file)", true},
    {"queue_run_delay", kTime, "300s",
     "how often the deferred queue is scanned for messages due for another attempt", true},
    {"recipient_delimiter", kString, "+", "separator of address extensions: alice+tag@ goes to alice", true},
    {"relay_domains", kList, "",
     "other domains mail is accepted for from anyone and queued onward (backup MX); .domain: subdomains too",
     true},
    {"relayhost", kString, "",
     "send all outbound mail to this host instead of the recipients' MX: [host]:port (no MX lookup), "
     "host:port or host (MX lookup)",
     true},
    {"smtp_connect_timeout", kTime, "30s", "time to set up a connection to a remote SMTP server", true},
    {"smtp_connection_cache_time_limit", kTime, "2s",
     "how long a connection to a remote SMTP server stays open for the next message to the same destination; "
     "0: close after each delivery",
     true},
    {"smtp_connection_reuse_time_limit", kTime, "300s",
     "a connection older than this is closed after its delivery instead of being reused", true},
    {"smtp_data_done_timeout", kTime, "600s",
     "time to wait for the remote server's reply to the end of the message (\".\" or BDAT LAST)", true},
    {"smtp_data_init_timeout", kTime, "120s", "time to wait for the remote server's reply to DATA", true},
    {"smtp_data_xfer_timeout", kTime, "180s", "time to wait while sending message content, per write", true},
    {"smtp_helo_timeout", kTime, "300s", "time to wait for the remote server's greeting and EHLO/HELO reply",
     true},
    {"smtp_listen", kList, "25",
     "inbound SMTP listener(s): port or host:port, comma-separated; empty disables", true},
    {"smtp_mail_timeout", kTime, "300s", "time to wait for the remote server's reply to MAIL FROM", true},
    {"smtp_mta_sts", kBool, "yes",
     "apply the MTA-STS policy (RFC 8461) a recipient domain publishes: in enforce mode only its listed MX "
     "hosts, over TLS with a verified certificate (Postern)",
     true},
    {"smtp_mta_sts_timeout", kTime, "60s",
     "time to fetch an MTA-STS policy over HTTPS, all included (Postern)", true},
    {"smtp_quit_timeout", kTime, "300s", "time to wait for the remote server's reply to QUIT", true},
    {"smtp_rcpt_timeout", kTime, "300s", "time to wait for the remote server's reply to RCPT TO", true},
    {"smtp_sasl_auth_enable", kBool, "no",
     "authenticate to the relayhost with the credentials of smtp_sasl_password_maps", true},
    {"smtp_sasl_password_maps", kString, "",
     "file of \"[host]:port user:password\" lines (Postfix's table, read as text): the credentials for the "
     "relayhost",
     true},
    {"smtp_starttls_timeout", kTime, "300s",
     "time to wait for the remote server's reply to STARTTLS and for the TLS handshake", true},
    {"smtp_tls_CAfile", kString, "",
     "trusted CA certificates (PEM) for verify/secure, MTA-STS and the Trusted/Untrusted log words; empty: "
     "the system store",
     true},
    {"smtp_tls_security_level", kString, "may",
     "outbound TLS: none, may (STARTTLS when offered), encrypt (refuse to deliver without TLS), dane (DANE "
     "TLSA when DNSSEC-validated, else may), dane-only (defer without usable TLSA), verify (certificate "
     "chain and MX host name), secure (chain and MX host name or next-hop domain)",
     true},
    {"smtpd_banner", kString, "$myhostname ESMTP $mail_name", "text after 220 in the greeting", true},
    {"smtpd_client_connection_count_limit", kInt, "50",
     "simultaneous sessions from one client IP; 0: no limit", true},
    {"smtpd_client_connection_rate_limit", kInt, "0",
     "new SMTP connections from one address per anvil_rate_time_unit; 0: no limit", true},
    {"smtpd_connection_limit", kInt, "1000", "simultaneous SMTP sessions in all (Postern)", true},
    {"smtpd_error_sleep_time", kTime, "1s", "delay before each reply once the soft error limit is reached",
     true},
    {"smtpd_hard_error_limit", kInt, "20", "errors in one session before it is closed", true},
    {"smtpd_helo_required", kBool, "no", "require HELO or EHLO before MAIL", true},
    {"smtpd_junk_command_limit", kInt, "100",
     "NOOP, VRFY and RSET commands per message before each one counts as an error", true},
    {"smtpd_pregreet_wait", kTime, "0s",
     "wait this long before the greeting and refuse clients that talk first (Postern)", true},
    {"smtpd_recipient_limit", kInt, "1000", "recipients accepted per message", true},
    {"smtpd_recipient_restrictions", kList,
     "permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination",
     "restrictions applied at RCPT TO, after smtpd_relay_restrictions", true},
    {"smtpd_relay_restrictions", kList,
     "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
     "relay restrictions applied at RCPT TO, first", true},
    {"smtpd_sasl_auth_enable", kBool, "no", "offer SMTP AUTH", true},
    {"smtpd_sasl_authenticated_header", kBool, "no",
     "name the SASL login in the Received: header (\"Authenticated sender: ...\")", true},
    {"smtpd_sasl_local_domain", kString, "", "realm appended to SASL login names without @", true},
    {"smtpd_sasl_security_options", kList, "noanonymous",
     "SASL mechanism properties required: noanonymous (there is no ANONYMOUS), noplaintext (no PLAIN, LOGIN)",
     true},
    {"smtpd_sender_login_maps", kList, "",
     "who owns which sender address: \"address login[,login]\" (hash:/texthash: read as text), for "
     "reject_sender_login_mismatch",
     true},
    {"smtpd_session_time_limit", kTime, "3600s", "longest SMTP session, whatever it does (Postern)", true},
    {"smtpd_soft_error_limit", kInt, "10", "errors after which every reply is delayed", true},
    {"smtpd_timeout", kTime, "300s", "longest wait for the client to send something", true},
    {"smtpd_tls_auth_only", kBool, "no", "offer the plaintext SASL mechanisms (PLAIN, LOGIN) only over TLS",
     true},
    {"smtpd_tls_cert_file", kString, "", "certificate of the SMTP services; empty: ssl_cert_file", true},
    {"smtpd_tls_key_file", kString, "$smtpd_tls_cert_file", "private key of smtpd_tls_cert_file", true},
    {"smtpd_tls_security_level", kString, "may",
     "SMTP server TLS: none, may (STARTTLS offered), encrypt (required); submission: encrypt", true},
    {"smtputf8_enable", kBool, "yes", "announce and accept SMTPUTF8 (RFC 6531)", true},
    {"ssl", kString, "yes", "IMAP/POP3 TLS: no, yes, required (no authentication without TLS) (Dovecot)",
     true},
    {"ssl_cert_file", kString, "",
     "certificate chain (PEM) for every TLS service; empty: a self-signed one made under queue_directory/tls",
     true},
    {"ssl_cipher_list", kString,
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
     "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
     "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305",
     "TLS 1.2 ciphers, OpenSSL syntax (TLS 1.3 suites are OpenSSL's); default: Mozilla's intermediate list",
     true},
    {"ssl_key_file", kString, "$ssl_cert_file", "private key (PEM) of ssl_cert_file", true},
    {"ssl_min_protocol", kString, "TLSv1.2", "oldest TLS version accepted: TLSv1.2 or TLSv1.3 (Dovecot)",
     true},
    {"submission_listen", kList, "587", "submission listener(s): STARTTLS and AUTH required (Postern)", true},
    {"submissions_listen", kList, "465", "submission over implicit TLS listener(s) (Postern)", true},
    {"tls_handshake_timeout", kTime, "30s",
     "time a client has to complete a TLS handshake, every protocol (Postern)", true},
    {"tls_server_sni_maps", kString, "",
     "file of \"hostname  chain.pem\" lines (key and certificates in one file; \".domain\" for subdomains)",
     true},
    {"unknown_address_reject_code", kInt, "450",
     "reply code of reject_unknown_recipient_domain and reject_unknown_sender_domain when the domain has no "
     "MX, A or AAAA record (Postfix)",
     true},
    {"virtual_alias_domains", kList, "", "domains that only have virtual aliases (no mailboxes)", true},
    {"virtual_alias_maps", kList, "",
     "address aliases in virtual(5) format (user@domain, @domain catch-all), for every domain of ours", true},
    {"virtual_mailbox_base", kString, "/var/mail/vhosts",
     "virtual mail of alice@example.org is <base>/example.org/alice/", true},
    {"virtual_mailbox_domains", kList, "", "domains whose users are in passwd_file", true},
});

constexpr bool sorted() {
  for (size_t i = 1; i < kParameters.size(); ++i)
    if (!(kParameters[i - 1].name < kParameters[i].name)) return false;
  return true;
}
static_assert(sorted(), "keep kParameters sorted by name");

}  // namespace

std::span<const Parameter> parameters() {
  return kParameters;
}

const Parameter* find_parameter(std::string_view name) {
  auto it = std::lower_bound(kParameters.begin(), kParameters.end(), name,
                             [](const Parameter& p, std::string_view n) { return p.name < n; });
  return (it != kParameters.end() && it->name == name) ? &*it : nullptr;
}

bool is_service_name(std::string_view name) {
  static constexpr std::string_view kServices[] = {"smtp",  "submission", "submissions", "imap",
                                                   "imaps", "pop3",       "pop3s"};
  return std::find(std::begin(kServices), std::end(kServices), name) != std::end(kServices);
}

std::optional<std::string_view> service_default(std::string_view service, std::string_view name) {
  struct Default {
    std::string_view service, name, value;
  };
  static constexpr Default kDefaults[] = {
      {"submission", "smtpd_tls_security_level", "encrypt"},
      {"submission", "smtpd_sasl_auth_enable", "yes"},
      {"submission", "smtpd_relay_restrictions", "permit_sasl_authenticated, reject"},
      {"submission", "smtpd_recipient_restrictions", "permit_sasl_authenticated, reject"},
      {"submissions", "smtpd_sasl_auth_enable", "yes"},
      {"submissions", "smtpd_relay_restrictions", "permit_sasl_authenticated, reject"},
      {"submissions", "smtpd_recipient_restrictions", "permit_sasl_authenticated, reject"},
  };
  for (const auto& d : kDefaults)
    if (d.service == service && d.name == name) return d.value;
  return std::nullopt;
}

}  // namespace postern::config

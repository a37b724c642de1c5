// delivery/remote.hpp: the SMTP delivery agent (Postfix's smtp(8)): one message's recipients of one
// destination delivered to that destination's mail servers. The destination's hosts come from DNS (MX in
// preference order, equal preferences shuffled; A/AAAA when there is no MX; a null MX (RFC 7505) bounces at
// once) or from `relayhost`; addresses follow inet_protocols. A host that cannot be reached, or greets with
// 4xx, or loses the connection before the transaction, is skipped for the next one (Postfix's behaviour);
// the first host that holds a transaction decides. The protocol itself is smtp/client/session, driven here
// over Asio with the smtp_*_timeout of each stage and opportunistic or required STARTTLS. With
// smtp_tls_security_level = dane/dane-only the MX, address and TLSA (RFC 7672) answers are DNSSEC-validated
// and a host with usable TLSA records must match them; verify/secure check the certificate against the trust
// store and the host name (PKIX). A host that fails its check is skipped (4.7.5), as Postfix does. The
// recipient domain's MTA-STS policy (delivery/mta_sts.hpp, smtp_mta_sts) in enforce mode leaves out MX hosts
// it does not list and asks the others for PKIX; in testing mode it only logs; DANE takes precedence.
// Security: everything the remote server sends is untrusted and only reaches smtp/client's bounded parser;
// the peer's certificate is only trusted as tls/client.hpp decides (may/encrypt: encryption without
// authentication, as in Postfix); TLSA records count only from validated answers; the relayhost password is
// sent only as AUTH asks for it, over TLS unless allowed.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// After a standard header: see dns/resolver.hpp (Asio's allocator config).
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "base/result.hpp"
#include "config/config.hpp"
#include "delivery/mta_sts.hpp"
#include "dns/resolver.hpp"
#include "smtp/client/session.hpp"
#include "tls/client.hpp"

namespace asio::ssl {
class context;
}

namespace postern::delivery {

// Where outbound mail goes instead of the MX hosts (Postfix's relayhost): "[host]:port" takes the host as
// it is, "host:port" or "host" looks up its MX first.
struct Relayhost {
  std::string host;
  uint16_t port = 25;
  bool mx_lookup = true;
};
Result<std::optional<Relayhost>> parse_relayhost(std::string_view value);

// smtp_tls_security_level, Postfix's levels.
enum class TlsLevel { kNone, kMay, kEncrypt, kDane, kDaneOnly, kVerify, kSecure };

struct RemoteSettings {
  smtp::client::Policy policy;          // helo name (TLS policy and credentials set per host)
  TlsLevel tls_level = TlsLevel::kMay;  //
  std::optional<Relayhost> relayhost;   //
  std::optional<smtp::client::Credentials> relay_credentials;  // smtp_sasl_password_maps entry for it
  bool want_v4 = true, want_v6 = true;                         // inet_protocols
  std::map<smtp::client::Timeout, std::chrono::seconds> timeouts;
  // The client context: the trust store of smtp_tls_CAfile, DANE enabled; peers checked per host.
  std::shared_ptr<asio::ssl::context> tls;
  // smtp_connection_cache_time_limit: how long a connection waits for the next message; 0 turns the cache
  // off. smtp_connection_reuse_time_limit: a connection older than this is not kept.
  std::chrono::seconds cache_time_limit{2}, reuse_time_limit{300};
  // smtp_mta_sts: the recipient domains' MTA-STS policies; nullptr when off or with a relayhost (the next hop
  // is then not the domain's MX).
  std::shared_ptr<MtaSts> mta_sts;

  static Result<RemoteSettings> from_config(const config::Config& cfg);
};

// What happened to one recipient, and where.
struct RemoteResult {
  smtp::client::Outcome outcome;
  std::string relay;  // "mx.example[192.0.2.1]:25"; "none" when no host was reached
  // How far the peer was authenticated: kVerified is a DANE or PKIX match (what REQUIRETLS needs).
  tls::Trust tls = tls::Trust::kNone;
};

// Connections left open between transactions, per destination, for the next message to it (Postfix's
// connection cache, scache(8)): a delivery takes one before it looks the destination up, and puts its
// connection back when its session went idle. A connection idle for cache_time_limit is closed with QUIT.
// Thread-safe; the connections are driven on the io_context given.
class ConnectionCache {
 public:
  ConnectionCache(asio::any_io_executor executor, const RemoteSettings& settings);
  ~ConnectionCache();
  ConnectionCache(const ConnectionCache&) = delete;
  ConnectionCache& operator=(const ConnectionCache&) = delete;

  struct Entry;  // a connection and what its session knew (remote.cpp)
  std::unique_ptr<Entry> take(const std::string& destination);
  void put(const std::string& destination, std::unique_ptr<Entry> entry);

  struct State;  // shared with the expiry timers

 private:
  std::shared_ptr<State> state_;
};

// What a connection to one host must prove (RFC 7672 2.2 for DANE, Postfix's smtp_tls_security_level).
struct HostSecurity {
  enum class Check { kNone, kPkix, kDane };
  smtp::client::TlsPolicy tls = smtp::client::TlsPolicy::kMay;
  Check check = Check::kNone;
  std::vector<std::string> names;  // reference identifiers: PKIX, DANE-TA (the TLSA base domain first)
  std::vector<dns::Tlsa> tlsa;     // kDane: the usable records
  std::string defer;               // not empty: the host is not used (4.7.5, this reason)
  std::string required_by;         // for the deferral text: who asks for the check ("MTA-STS policy of x")
};

// The security of `host` (reached on `port`) for the next hop `nexthop` at `level`. `dnssec`: the MX answer
// (or the administrator's relayhost) and the host's address records were DNSSEC-validated; only then are its
// TLSA records looked up (validated) for dane/dane-only.
asio::awaitable<HostSecurity> host_security(TlsLevel level, dns::Resolver& resolver, std::string nexthop,
                                            std::string host, uint16_t port, bool dnssec);

// Delivers `message` to `recipients` (all of `domain`), returning one result per recipient in order. With a
// cache, a connection cached for `domain` is used first, and the connection is cached when it went idle.
asio::awaitable<std::vector<RemoteResult>> deliver_remote(const RemoteSettings& settings,
                                                          dns::Resolver& resolver, std::string domain,
                                                          smtp::client::Message message,
                                                          ConnectionCache* cache = nullptr);

}  // namespace postern::delivery

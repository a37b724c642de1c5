// delivery/remote.cpp: the SMTP delivery agent (see remote.hpp).
#include "delivery/remote.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "base/log.hpp"
#include "base/strings.hpp"
#include "delivery/aliases.hpp"

namespace postern::delivery {
namespace {

using asio::ip::tcp;
namespace client = smtp::client;
constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);
// Postfix's smtp_mx_address_limit: at most this many addresses are tried per delivery.
constexpr int kMaxAddresses = 5;

// The smtp_sasl_password_maps entry of the relayhost: keys "[host]:port", "[host]", "host:port", "host".
std::optional<client::Credentials> read_relay_credentials(const std::string& path, const Relayhost& relay) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> keys;
  std::string bracketed = "[" + relay.host + "]";
  std::string port = ":" + std::to_string(relay.port);
  if (relay.mx_lookup) {
    keys = {relay.host + port, relay.host};
  } else {
    keys = {bracketed + port, bracketed};
  }
  while (std::getline(in, line)) {
    std::string_view l = trim(line);
    if (l.empty() || l.front() == '#') continue;
    size_t space = l.find_first_of(" \t");
    if (space == std::string_view::npos) continue;
    std::string key = to_lower(l.substr(0, space));
    std::string_view value = trim(l.substr(space));
    size_t colon = value.find(':');
    if (colon == std::string_view::npos) continue;
    if (std::find(keys.begin(), keys.end(), key) != keys.end())
      return client::Credentials{std::string(value.substr(0, colon)), std::string(value.substr(colon + 1))};
  }
  return std::nullopt;
}

// One connection: the TCP socket, and TLS over it once STARTTLS succeeded.
class Connection {
 public:
  Connection(tcp::socket socket, asio::ssl::context& ctx) : stream_(std::move(socket), ctx) {}

  // An operation raced against `limit`: the socket is cancelled when the timer fires first.
  template <class Op>
  asio::awaitable<asio::error_code> timed(std::chrono::seconds limit, Op op) {
    // Shared with the timer's handler, which may already be queued (on the same strand) when the operation
    // completes: it then finds `done` and touches neither the stream nor this frame.
    struct Race {
      bool done = false, expired = false;
    };
    auto race = std::make_shared<Race>();
    asio::steady_timer timer(co_await asio::this_coro::executor, limit);
    timer.async_wait([this, race](const asio::error_code& ec) {
      if (ec || race->done) return;
      race->expired = true;
      asio::error_code ignored;
      stream_.lowest_layer().cancel(ignored);
    });
    asio::error_code ec = co_await op();
    race->done = true;
    timer.cancel();
    co_return race->expired ? asio::error::timed_out : ec;
  }

  asio::awaitable<asio::error_code> write(std::string_view bytes, std::chrono::seconds limit) {
    auto op = [&]() -> asio::awaitable<asio::error_code> {
      auto [ec, n] = tls_ ? co_await asio::async_write(stream_, asio::buffer(bytes), kAsTuple)
                          : co_await asio::async_write(stream_.next_layer(), asio::buffer(bytes), kAsTuple);
      co_return ec;
    };
    co_return co_await timed(limit, op);
  }

  asio::awaitable<asio::error_code> read(std::string& out, std::chrono::seconds limit) {
    out.resize(16 * 1024);
    size_t got = 0;
    auto op = [&]() -> asio::awaitable<asio::error_code> {
      auto [ec, n] = tls_ ? co_await stream_.async_read_some(asio::buffer(out), kAsTuple)
                          : co_await stream_.next_layer().async_read_some(asio::buffer(out), kAsTuple);
      got = n;
      co_return ec;
    };
    auto ec = co_await timed(limit, op);
    out.resize(got);
    co_return ec;
  }

  asio::awaitable<bool> start_tls(const std::string& server_name, std::chrono::seconds limit) {
    if (!server_name.empty()) SSL_set_tlsext_host_name(stream_.native_handle(), server_name.c_str());
    auto op = [&]() -> asio::awaitable<asio::error_code> {
      auto [ec] = co_await stream_.async_handshake(asio::ssl::stream_base::client, kAsTuple);
      co_return ec;
    };
    tls_ = !co_await timed(limit, op);
    co_return tls_;
  }

  asio::awaitable<asio::error_code> connect(const tcp::endpoint& endpoint, std::chrono::seconds limit) {
    auto op = [&]() -> asio::awaitable<asio::error_code> {
      auto [ec] = co_await stream_.next_layer().async_connect(endpoint, kAsTuple);
      co_return ec;
    };
    co_return co_await timed(limit, op);
  }

  SSL* ssl() { return stream_.native_handle(); }

  void close() {
    asio::error_code ignored;
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.lowest_layer().close(ignored);
  }

 private:
  asio::ssl::stream<tcp::socket> stream_;
  bool tls_ = false;
};

std::chrono::seconds limit_of(const RemoteSettings& s, client::Timeout t) {
  auto it = s.timeouts.find(t);
  return it == s.timeouts.end() ? std::chrono::seconds(300) : it->second;
}

// Postfix's line: "Verified TLS connection established to mx[192.0.2.1]:25: TLSv1.3 with cipher ...".
void log_tls(SSL* ssl, tls::Trust trust, const std::string& relay) {
  int secret = 0;
  int bits = SSL_get_cipher_bits(ssl, &secret);
  log::info("smtp", "{} TLS connection established to {}: {} with cipher {} ({}/{} bits)",
            tls::trust_name(trust), relay, SSL_get_version(ssl), SSL_get_cipher_name(ssl), secret, bits);
}

// Runs `session` over a connected socket until it closes or goes idle (Session::reusable()); the peer is
// checked after STARTTLS as `security` says, and `trust` set to what the handshake proved.
asio::awaitable<void> run_session(const RemoteSettings& settings, Connection& conn, const std::string& host,
                                  const std::string& relay, const HostSecurity& security,
                                  client::Session& session, tls::Trust& trust) {
  client::Step step = session.start();
  std::string buffer;
  for (;;) {
    auto limit = limit_of(settings, step.timeout);
    if (!step.send.empty()) {
      if (auto ec = co_await conn.write(step.send, limit)) {
        step = session.connection_lost(fmt::format("lost connection with {} while sending: {}", host,
                                                   ec == asio::error::timed_out ? "timeout" : ec.message()));
        continue;
      }
    }
    if (step.next == client::Next::kClose) break;
    if (step.next == client::Next::kSendBody) {
      auto xfer = limit_of(settings, client::Timeout::kDataXfer);
      bool lost = false;
      for (auto piece = session.body_piece(); !piece.empty(); piece = session.body_piece()) {
        if (auto ec = co_await conn.write(piece, xfer)) {
          step = session.connection_lost(
              fmt::format("lost connection with {} while sending message body: {}", host,
                          ec == asio::error::timed_out ? "timeout" : ec.message()));
          lost = true;
          break;
        }
      }
      if (!lost) step = session.body_sent();
      continue;
    }
    if (step.next == client::Next::kStartTls) {
      if (!co_await conn.start_tls(host, limit)) {
        step = session.tls_done(false);
        continue;
      }
      trust = tls::peer_trust(conn.ssl());
      log_tls(conn.ssl(), trust, relay);
      if (security.check != HostSecurity::Check::kNone && trust != tls::Trust::kVerified) {
        std::string why = security.required_by.empty()
                              ? std::string("Server certificate not verified")
                              : fmt::format("Server certificate not verified ({})", security.required_by);
        log::info("smtp", "{}: {}: {}", relay, why, tls::verify_error(conn.ssl()));
        step = session.tls_done(false, why);
      } else {
        step = session.tls_done(true);
      }
      continue;
    }
    auto ec = co_await conn.read(buffer, limit);
    if (ec || buffer.empty()) {
      std::string why = ec == asio::error::timed_out ? fmt::format("conversation with {} timed out", host)
                                                     : fmt::format("lost connection with {}", host);
      step = session.connection_lost(why);
      continue;
    }
    step = session.received(buffer);
  }
  if (!session.reusable()) conn.close();
}

// Sets up the check `security` asks for on the connection, before its handshake.
Status require(const HostSecurity& security, Connection& conn) {
  switch (security.check) {
    case HostSecurity::Check::kNone:
      return Ok{};
    case HostSecurity::Check::kPkix:
      return tls::require_pkix_name(conn.ssl(), security.names);
    case HostSecurity::Check::kDane:
      return tls::require_dane(conn.ssl(), security.names, security.tlsa);
  }
  return Ok{};
}

// Whether the next host should be tried: nothing was decided past the greeting (Postfix tries the next MX
// after a connection failure, a 4xx greeting or a lost session before the transaction).
// Whether the host could not take a REQUIRETLS message (RFC 8689 4.2.1: no TLS, or no REQUIRETLS in the EHLO
// reply after TLS): the next host may; when none can, the message is returned with 5.7.30.
bool refused_requiretls(const std::vector<client::Outcome>& outcomes) {
  return !outcomes.empty() && std::all_of(outcomes.begin(), outcomes.end(), [](const client::Outcome& o) {
    return o.fate == client::Fate::kDeferred && o.code == 0 && o.enhanced == "5.7.30";
  });
}

bool try_next_host(const std::vector<client::Outcome>& outcomes) {
  return refused_requiretls(outcomes) ||
         std::all_of(outcomes.begin(), outcomes.end(), [](const client::Outcome& o) {
           return o.fate == client::Fate::kDeferred &&
                  (o.stage == client::Stage::kConnect || o.stage == client::Stage::kGreeting ||
                   o.stage == client::Stage::kHelo || o.stage == client::Stage::kStartTls);
         });
}

std::vector<RemoteResult> all(size_t n, client::Fate fate, std::string_view enhanced, std::string text) {
  client::Outcome o;
  o.fate = fate;
  o.enhanced = enhanced;
  o.text = std::move(text);
  return std::vector<RemoteResult>(n, RemoteResult{o, "none"});
}

struct Host {
  std::string name;
  uint16_t port = 25;
};

// RFC 8689 4.2.1: a REQUIRETLS message goes only to a host whose name comes from DNSSEC-validated MX
// records, an MTA-STS policy in enforce mode or the administrator's relayhost, over TLS with a certificate
// that DANE or PKIX verifies for that name, whatever smtp_tls_security_level says.
void require_authenticated(HostSecurity& security, const std::string& host, bool mx_secure) {
  if (!security.defer.empty() || security.check != HostSecurity::Check::kNone) return;
  if (!mx_secure) {
    security.defer = fmt::format(
        "REQUIRETLS: the MX records that name {} are not DNSSEC-validated, nor listed by an MTA-STS policy",
        host);
    return;
  }
  security.tls = client::TlsPolicy::kEncrypt;
  security.check = HostSecurity::Check::kPkix;
  security.names = {host};
}

// RFC 8689 4.2.2: "TLS-Required: No": the recipient's policy (DANE) does not stop delivery; TLS is still
// used when offered. The administrator's own verify/secure level stands.
void relax(TlsLevel level, HostSecurity& security) {
  if (level == TlsLevel::kDane || level == TlsLevel::kDaneOnly) security = HostSecurity();
}

// Sends QUIT to a cached connection that is no longer wanted and closes it.
asio::awaitable<void> retire(std::unique_ptr<ConnectionCache::Entry> entry, std::chrono::seconds limit);

}  // namespace

struct ConnectionCache::Entry {
  std::unique_ptr<Connection> conn;
  std::string host;   // the MX host name (TLS server name, log text)
  std::string relay;  // "mx.example[192.0.2.1]:25"
  tls::Trust trust = tls::Trust::kNone;
  client::Resume resume;
  std::chrono::steady_clock::time_point connected;
  uint64_t id = 0;                             // while cached
  std::unique_ptr<asio::steady_timer> expiry;  // while cached
};

struct ConnectionCache::State {
  asio::any_io_executor executor;
  std::chrono::seconds idle_limit, reuse_limit, quit_limit;
  std::mutex mutex;  // guards what follows
  uint64_t next_id = 0;
  std::multimap<std::string, std::unique_ptr<Entry>> idle;
};

namespace {

asio::awaitable<void> retire(std::unique_ptr<ConnectionCache::Entry> entry, std::chrono::seconds limit) {
  if (!co_await entry->conn->write("QUIT\r\n", limit)) {
    std::string reply;
    (void)co_await entry->conn->read(reply, limit);
  }
  entry->conn->close();
}

}  // namespace

ConnectionCache::ConnectionCache(asio::any_io_executor executor, const RemoteSettings& settings)
    : state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
  state_->idle_limit = settings.cache_time_limit;
  state_->reuse_limit = settings.reuse_time_limit;
  state_->quit_limit = limit_of(settings, client::Timeout::kQuit);
}

ConnectionCache::~ConnectionCache() {
  std::lock_guard lock(state_->mutex);
  for (auto& [destination, entry] : state_->idle) entry->conn->close();
  state_->idle.clear();
}

std::unique_ptr<ConnectionCache::Entry> ConnectionCache::take(const std::string& destination) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->idle.find(destination);
  if (it == state_->idle.end()) return nullptr;
  auto entry = std::move(it->second);
  state_->idle.erase(it);
  entry->expiry->cancel();
  entry->expiry.reset();
  return entry;
}

void ConnectionCache::put(const std::string& destination, std::unique_ptr<Entry> entry) {
  auto now = std::chrono::steady_clock::now();
  if (state_->idle_limit.count() <= 0 || now - entry->connected >= state_->reuse_limit) {
    asio::co_spawn(state_->executor, retire(std::move(entry), state_->quit_limit), asio::detached);
    return;
  }
  std::lock_guard lock(state_->mutex);
  entry->id = ++state_->next_id;
  entry->expiry = std::make_unique<asio::steady_timer>(state_->executor, state_->idle_limit);
  // The timer's handler holds the state weakly: it may run after the cache is gone, or after take().
  entry->expiry->async_wait(
      [weak = std::weak_ptr<State>(state_), destination, id = entry->id](const asio::error_code& ec) {
        auto state = weak.lock();
        if (ec || !state) return;
        std::unique_ptr<Entry> expired;
        {
          std::lock_guard lock(state->mutex);
          auto [first, last] = state->idle.equal_range(destination);
          for (auto it = first; it != last; ++it) {
            if (it->second->id != id) continue;
            expired = std::move(it->second);
            state->idle.erase(it);
            break;
          }
        }
        if (expired)
          asio::co_spawn(state->executor, retire(std::move(expired), state->quit_limit), asio::detached);
      });
  state_->idle.emplace(destination, std::move(entry));
}

Result<std::optional<Relayhost>> parse_relayhost(std::string_view value) {
  value = trim(value);
  if (value.empty()) return std::optional<Relayhost>();
  Relayhost r;
  std::string_view rest;
  if (value.front() == '[') {
    size_t close = value.find(']');
    if (close == std::string_view::npos || close == 1) return Error{"relayhost: an unclosed [host]"};
    r.host = to_lower(value.substr(1, close - 1));
    r.mx_lookup = false;
    rest = value.substr(close + 1);
  } else {
    size_t colon = value.find(':');
    r.host = to_lower(value.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : value.substr(colon);
  }
  if (!rest.empty()) {
    unsigned long long port = 0;
    if (rest.front() != ':' || !parse_u64(rest.substr(1), port) || port == 0 || port > 65535)
      return Error{fmt::format("relayhost: bad port in \"{}\"", value)};
    r.port = static_cast<uint16_t>(port);
  }
  if (r.host.empty()) return Error{"relayhost: no host"};
  return std::optional<Relayhost>(r);
}

asio::awaitable<HostSecurity> host_security(TlsLevel level, dns::Resolver& resolver, std::string nexthop,
                                            std::string host, uint16_t port, bool dnssec) {
  using client::TlsPolicy;
  HostSecurity s;
  switch (level) {
    case TlsLevel::kNone:
      s.tls = TlsPolicy::kNone;
      co_return s;
    case TlsLevel::kMay:
      co_return s;
    case TlsLevel::kEncrypt:
      s.tls = TlsPolicy::kEncrypt;
      co_return s;
    case TlsLevel::kVerify:
    case TlsLevel::kSecure:
      s.tls = TlsPolicy::kEncrypt;
      s.check = HostSecurity::Check::kPkix;
      s.names = {host};
      if (level == TlsLevel::kSecure && nexthop != host) s.names.push_back(nexthop);
      co_return s;
    case TlsLevel::kDane:
    case TlsLevel::kDaneOnly:
      break;
  }
  bool only = level == TlsLevel::kDaneOnly;
  asio::error_code not_literal;
  (void)asio::ip::make_address(host, not_literal);
  if (!dnssec || !not_literal) {  // RFC 7672 2.2: no TLSA base domain from insecure answers
    if (only) s.defer = fmt::format("no DNSSEC-validated MX and address records for {} (dane-only)", host);
    co_return s;
  }
  std::string base = fmt::format("_{}._tcp.{}", port, host);
  auto tlsa = co_await resolver.tlsa(base, true);
  if (tlsa.status == dns::Status::kTempFail || tlsa.status == dns::Status::kBogus) {
    s.defer = fmt::format("TLSA lookup error for {}: {}", base,
                          tlsa.why.empty() ? std::string(dns::status_name(tlsa.status)) : tlsa.why);
    co_return s;
  }
  if (tlsa.status != dns::Status::kFound || !tlsa.secure) {
    if (only) s.defer = fmt::format("no DNSSEC-validated TLSA records for {} (dane-only)", base);
    co_return s;
  }
  // Secure TLSA records: TLS is mandatory, even when none of them is usable (RFC 7672 2.2).
  s.tls = TlsPolicy::kEncrypt;
  std::copy_if(tlsa.records.begin(), tlsa.records.end(), std::back_inserter(s.tlsa), tls::usable_for_smtp);
  if (s.tlsa.empty()) {
    if (only) s.defer = fmt::format("no usable TLSA records for {} (dane-only)", base);
    co_return s;
  }
  s.check = HostSecurity::Check::kDane;
  s.names = {host};
  co_return s;
}

Result<RemoteSettings> RemoteSettings::from_config(const config::Config& cfg) {
  RemoteSettings s;
  s.policy.helo_name = cfg.get("myhostname");
  static const std::map<std::string, TlsLevel, std::less<>> kLevels = {
      {"none", TlsLevel::kNone},          {"may", TlsLevel::kMay},
      {"encrypt", TlsLevel::kEncrypt},    {"dane", TlsLevel::kDane},
      {"dane-only", TlsLevel::kDaneOnly}, {"verify", TlsLevel::kVerify},
      {"secure", TlsLevel::kSecure}};
  std::string level = cfg.get("smtp_tls_security_level");
  auto known = kLevels.find(level);
  if (known == kLevels.end())
    return Error{fmt::format(
        "smtp_tls_security_level: \"{}\" is not none, may, encrypt, dane, dane-only, verify or secure",
        level)};
  s.tls_level = known->second;
  auto relay = parse_relayhost(cfg.get("relayhost"));
  if (!relay) return relay.error();
  s.relayhost = *relay;
  if (s.relayhost && cfg.get_bool("smtp_sasl_auth_enable")) {
    std::string path = table_path(cfg.get("smtp_sasl_password_maps"));
    if (!path.empty() && path.front() != '/') path = cfg.dir() + "/" + path;
    s.relay_credentials = read_relay_credentials(path, *s.relayhost);
  }
  auto protocols = cfg.get_list("inet_protocols");
  bool any = std::find(protocols.begin(), protocols.end(), "all") != protocols.end();
  s.want_v4 = any || std::find(protocols.begin(), protocols.end(), "ipv4") != protocols.end();
  s.want_v6 = any || std::find(protocols.begin(), protocols.end(), "ipv6") != protocols.end();
  using client::Timeout;
  for (Timeout t :
       {Timeout::kConnect, Timeout::kHelo, Timeout::kStartTls, Timeout::kAuth, Timeout::kMail, Timeout::kRcpt,
        Timeout::kDataInit, Timeout::kDataXfer, Timeout::kDataDone, Timeout::kQuit})
    s.timeouts[t] = std::chrono::seconds(cfg.get_int(client::timeout_parameter(t)));
  s.tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  if (auto st = tls::configure_client_context(s.tls->native_handle(), cfg.get_path("smtp_tls_CAfile")); !st)
    return st.error();
  if (!s.relayhost) s.mta_sts = MtaSts::from_config(cfg, s.tls, s.want_v4, s.want_v6);
  s.cache_time_limit = std::chrono::seconds(cfg.get_int("smtp_connection_cache_time_limit"));
  s.reuse_time_limit = std::chrono::seconds(cfg.get_int("smtp_connection_reuse_time_limit"));
  return s;
}

asio::awaitable<std::vector<RemoteResult>> deliver_remote(const RemoteSettings& settings,
                                                          dns::Resolver& resolver, std::string domain,
                                                          client::Message message, ConnectionCache* cache) {
  size_t n = message.recipients.size();
  client::Policy policy = settings.policy;
  policy.credentials = settings.relay_credentials;
  policy.keep_open = cache != nullptr;
  // The results of a session. A connection whose session went idle is kept for the next message (`idle`,
  // cached at the end); any other was closed by run_session.
  std::vector<std::unique_ptr<ConnectionCache::Entry>> idle;
  auto results_of = [&](client::Session& session, std::unique_ptr<ConnectionCache::Entry> entry) {
    std::vector<RemoteResult> results;
    for (auto& o : session.outcomes().front()) results.push_back({o, entry->relay, entry->trust});
    if (session.reusable()) {
      entry->resume = session.resume();
      idle.push_back(std::move(entry));
    }
    return results;
  };
  auto keep_idle = [&] {
    for (auto& entry : idle) cache->put(domain, std::move(entry));
    idle.clear();
  };
  // RFC 8689 4.2.1: a REQUIRETLS message that no host could take over authenticated TLS to a server offering
  // REQUIRETLS is returned (5.7.30) rather than retried; a host that could not be reached is retried.
  auto done = [&](std::vector<RemoteResult> results) {
    keep_idle();
    auto refused = [&](const RemoteResult& r) {
      const auto& o = r.outcome;
      return refused_requiretls({o}) || (message.requiretls && o.fate == client::Fate::kDeferred &&
                                         o.code == 0 && o.enhanced.starts_with("4.7."));
    };
    if (!results.empty() && std::all_of(results.begin(), results.end(), refused)) {
      for (auto& r : results) {
        r.outcome.fate = client::Fate::kBounced;
        if (r.outcome.enhanced != "5.7.30") r.outcome.text = "REQUIRETLS: " + r.outcome.text;
        r.outcome.enhanced = "5.7.30";
      }
    }
    return results;
  };
  // RFC 8461: the domain's MTA-STS policy. In enforce mode a cached connection must be to a host of the
  // policy, with a verified certificate. "TLS-Required: No" (RFC 8689 4.2.2): no policy applies.
  std::optional<StsPolicy> sts;
  if (settings.mta_sts && !message.tls_optional) sts = co_await settings.mta_sts->policy(resolver, domain);
  bool sts_enforce = sts && sts->mode == StsMode::kEnforce;
  // A cached connection first; one that no longer works is closed and the next is tried. Not for a
  // REQUIRETLS message, whose host must first prove itself (below).
  std::vector<RemoteResult> results;
  while (cache && !message.requiretls) {
    auto entry = cache->take(domain);
    if (!entry) break;
    if (sts_enforce && (entry->trust != tls::Trust::kVerified || !sts_mx_matches(*sts, entry->host))) {
      entry->conn->close();
      continue;
    }
    client::Session session(policy, {message}, entry->resume);
    co_await run_session(settings, *entry->conn, entry->host, entry->relay, HostSecurity(), session,
                         entry->trust);
    results = results_of(session, std::move(entry));
    if (!try_next_host(session.outcomes().front())) co_return done(std::move(results));
  }
  keep_idle();  // after the loop, not in it: take() would hand the same connection out again

  // DANE needs validated MX and address records (RFC 7672 2.2); REQUIRETLS validated MX records (RFC 8689
  // 4.2.1), the certificate then vouches for the address.
  bool validate = settings.tls_level == TlsLevel::kDane || settings.tls_level == TlsLevel::kDaneOnly;
  std::string name = settings.relayhost ? settings.relayhost->host : domain;  // the next hop
  std::vector<Host> hosts;
  bool mx_secure = true;  // a [relayhost] is the administrator's word
  if (settings.relayhost && !settings.relayhost->mx_lookup) {
    hosts.push_back({settings.relayhost->host, settings.relayhost->port});
  } else {
    uint16_t port = settings.relayhost ? settings.relayhost->port : 25;
    auto mx = co_await resolver.mx(name, validate || message.requiretls);
    mx_secure = mx.secure;
    if (mx.status == dns::Status::kFound && dns::is_null_mx(mx))
      co_return all(n, client::Fate::kBounced, "5.1.10",
                    fmt::format("Domain {} does not accept mail (nullMX)", name));
    if (mx.status == dns::Status::kNxDomain)
      co_return all(n, client::Fate::kBounced, "5.4.4",
                    fmt::format("Host or domain name not found. Name service error for name={} type=MX: Host "
                                "not found",
                                name));
    if (mx.status != dns::Status::kFound && mx.status != dns::Status::kNoData)
      co_return all(n, client::Fate::kDeferred, "4.4.3",
                    fmt::format("Host or domain name not found. Name service error for name={} type=MX: Host "
                                "not found, try again ({})",
                                name, mx.why));
    // Preference order, equal preferences in random order (RFC 5321 5.1); no MX: the name itself.
    std::shuffle(mx.records.begin(), mx.records.end(), std::mt19937(std::random_device{}()));
    std::stable_sort(mx.records.begin(), mx.records.end(),
                     [](const dns::Mx& a, const dns::Mx& b) { return a.preference < b.preference; });
    for (const auto& r : mx.records) hosts.push_back({r.host, port});
    if (hosts.empty()) hosts.push_back({name, port});
  }

  std::string last_problem, last_enhanced = "4.4.1";
  int tried = 0;
  auto executor = co_await asio::this_coro::executor;
  for (const auto& host : hosts) {
    // An address as the host ("relayhost = [192.0.2.1]:587") is used as it is.
    asio::error_code not_literal;
    auto literal = asio::ip::make_address(host.name, not_literal);
    dns::Answer<asio::ip::address> addresses;
    if (not_literal) {
      addresses = co_await resolver.addresses(host.name, settings.want_v4, settings.want_v6, validate);
    } else {
      addresses.status = dns::Status::kFound;
      addresses.records.push_back(literal);
    }
    if (addresses.status != dns::Status::kFound) {
      last_problem = fmt::format(
          "Host or domain name not found. Name service error for name={} type=A: {}", host.name,
          addresses.status == dns::Status::kNxDomain ? "Host not found" : "Host not found, try again");
      last_enhanced = "4.4.1";
      continue;
    }
    auto security = co_await host_security(settings.tls_level, resolver, name, host.name, host.port,
                                           mx_secure && addresses.secure);
    if (message.requiretls) {
      // The MX name vouched for by DNSSEC, or by an MTA-STS policy in enforce mode (RFC 8689 4.2.1).
      require_authenticated(security, host.name,
                            mx_secure || (sts_enforce && sts_mx_matches(*sts, host.name)));
    } else if (message.tls_optional) {
      relax(settings.tls_level, security);
    }
    if (!security.defer.empty()) {
      log::info("smtp", "{}: {}", host.name, security.defer);
      last_problem = security.defer;
      last_enhanced = "4.7.5";
      continue;
    }
    // MTA-STS, unless DANE applies (RFC 8461 2): enforce uses only the policy's hosts, over verified TLS;
    // testing only reports.
    StsCheck sts_check_result;
    if (sts && security.check != HostSecurity::Check::kDane) {
      sts_check_result = sts_check(*sts, domain, host.name);
      if (!sts_check_result.problem.empty()) log::info("smtp", "{}", sts_check_result.problem);
      if (sts_check_result.refuse) {
        last_problem = sts_check_result.problem;
        last_enhanced = "4.7.5";
        continue;
      }
      if (sts_check_result.require_pkix && security.check == HostSecurity::Check::kNone) {
        security.tls = client::TlsPolicy::kEncrypt;
        security.check = HostSecurity::Check::kPkix;
        security.names = {host.name};
        security.required_by = fmt::format("MTA-STS policy of {}", domain);
      }
    }
    policy.tls = security.tls;
    for (const auto& address : addresses.records) {
      if (tried++ >= kMaxAddresses) break;
      auto entry = std::make_unique<ConnectionCache::Entry>();
      entry->relay = fmt::format("{}[{}]:{}", host.name, address.to_string(), host.port);
      entry->host = host.name;
      entry->conn = std::make_unique<Connection>(tcp::socket(executor), *settings.tls);
      if (auto st = require(security, *entry->conn); !st) {
        last_problem = fmt::format("{}: {}", entry->relay, st.error().message);
        last_enhanced = "4.7.5";
        continue;
      }
      if (auto ec = co_await entry->conn->connect(tcp::endpoint(address, host.port),
                                                  limit_of(settings, client::Timeout::kConnect))) {
        last_problem = fmt::format("connect to {}: {}", entry->relay,
                                   ec == asio::error::timed_out ? "Connection timed out" : ec.message());
        last_enhanced = "4.4.1";
        continue;
      }
      entry->connected = std::chrono::steady_clock::now();
      client::Session session(policy, {message});
      co_await run_session(settings, *entry->conn, host.name, entry->relay, security, session, entry->trust);
      results = results_of(session, std::move(entry));
      if (sts_check_result.report && results.front().tls != tls::Trust::kVerified)
        log::info("smtp",
                  "MTA-STS policy of {} (testing mode): TLS to {} not verified ({}); delivery goes on",
                  domain, results.front().relay, tls::trust_name(results.front().tls));
      if (!try_next_host(session.outcomes().front())) co_return done(std::move(results));
    }
  }
  if (results.empty()) co_return done(all(n, client::Fate::kDeferred, last_enhanced, last_problem));
  co_return done(std::move(results));
}

}  // namespace postern::delivery

#include "net/server.hpp"

#include <malloc.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ssl.hpp>

#include <chrono>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "auth/throttle.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "config/parameters.hpp"
#include "delivery/local.hpp"
#include "delivery/privileged.hpp"
#include "dkim/keys.hpp"
#include "dns/unbound.hpp"
#include "imap/proto/reader.hpp"
#include "imap/server/session.hpp"
#include "net/deflate.hpp"
#include "net/listen.hpp"
#include "pop3/server/session.hpp"
#include "queue/manager.hpp"
#include "smtp/proto/line_buffer.hpp"
#include "smtp/server/session.hpp"
#include "store/maildir/maildir.hpp"
#include "tls/server.hpp"

namespace postern::net {
namespace {

using asio::awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kImapReadChunk = 16 * 1024;
constexpr size_t kIdleReadChunk = 256;
constexpr auto kFinalWriteTime = std::chrono::seconds(10);

// What every session of one configuration shares; replaced as a whole on reload.
struct Runtime {
  std::shared_ptr<const config::Config> config;
  std::shared_ptr<delivery::LocalDelivery> delivery;
  std::shared_ptr<auth::Passdb> passdb;
  std::shared_ptr<tls::Contexts> tls;  // certificates; null when no service uses TLS
  std::shared_ptr<const queue::Spool> spool;
  std::shared_ptr<const dkim::KeyTable> dkim;  // null in a user's session process (it sends no mail)
  std::map<std::string, std::shared_ptr<const smtp::server::Policy>, std::less<>> policies;  // by service
};

bool tls_used(const config::Config& cfg) {
  return cfg.get("ssl") != "no" || cfg.get("smtpd_tls_security_level") != "none" ||
         !cfg.get_list("submission_listen").empty() || !cfg.get_list("submissions_listen").empty();
}

// `read`: how certificate and key files are read (directly while root, else through the helper).
// `read`: null in a user's session process, which needs no certificate (the server's process keeps TLS).
Result<std::shared_ptr<Runtime>> make_runtime(std::shared_ptr<const config::Config> cfg,
                                              const tls::FileReader& read) {
  auto rt = std::make_shared<Runtime>();
  rt->config = cfg;
  rt->delivery = std::make_shared<delivery::LocalDelivery>(*cfg);
  rt->passdb = std::make_shared<auth::Passdb>(*cfg);
  if (read && tls_used(*cfg)) {
    auto contexts = tls::Contexts::load(*cfg, read);
    if (!contexts) return contexts.error();
    rt->tls = *contexts;
    for (const auto& line : rt->tls->summary()) log::info("master", "TLS certificate {}", line);
  }
  rt->spool = std::make_shared<queue::Spool>(cfg->get_path("queue_directory"));
  if (read) rt->dkim = dkim::KeyTable::load(cfg->dir(), read);
  auto host = host_facts(*cfg);
  for (std::string_view service : smtp::server::kSmtpServices) {
    auto policy = smtp::server::Policy::load(*cfg, service, host);
    if (!policy) return policy.error();
    rt->policies[std::string(service)] = std::make_shared<const smtp::server::Policy>(std::move(*policy));
  }
  return rt;
}

// The protocols a listener speaks.
enum class Service { kSmtp, kImap, kPop3 };

// One listening socket: its protocol, its name for per-service settings ("submission", "imaps"), and
// whether TLS starts at once (implicit TLS, RFC 8314) instead of after STARTTLS.
struct Endpoint {
  Service protocol;
  std::string name;
  bool implicit_tls = false;
};

// Every listener setting, the service name its per-service settings use ("submission/smtpd_..."), and
// whether it speaks TLS from the first byte.
const std::pair<std::string_view, Endpoint> kEndpoints[] = {
    {"smtp_listen", {Service::kSmtp, "smtp", false}},
    {"submission_listen", {Service::kSmtp, "submission", false}},
    {"submissions_listen", {Service::kSmtp, "submissions", true}},
    {"imap_listen", {Service::kImap, "imap", false}},
    {"imaps_listen", {Service::kImap, "imaps", true}},
    {"pop3_listen", {Service::kPop3, "pop3", false}},
    {"pop3s_listen", {Service::kPop3, "pop3s", true}},
};

class Server;
struct Connection;
void set_deadline(Connection& c, Clock::time_point t);

// Logged-in IMAP sessions per (user, client address): mail_max_userip_connections. Used from the worker
// threads (logins, LOGOUT) and the I/O threads (disconnects).
class UserIpLimiter : public std::enable_shared_from_this<UserIpLimiter> {
 public:
  // A slot, given back when the last copy of the handle goes; null when the user is at `limit` (0: none).
  std::shared_ptr<void> acquire(const std::string& user, const std::string& ip, long long limit) {
    std::lock_guard lock(mutex_);
    auto key = std::make_pair(user, ip);
    auto it = counts_.find(key);
    if (limit > 0 && it != counts_.end() && it->second >= limit) return nullptr;
    ++counts_[key];
    return std::shared_ptr<void>(this, [self = shared_from_this(), key](void*) { self->release(key); });
  }

 private:
  void release(const std::pair<std::string, std::string>& key) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(key);
    if (it != counts_.end() && --it->second <= 0) counts_.erase(it);
  }

  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, long long> counts_;
};

// One connection's state, shared by its session coroutine and its watchdog. Everything of one connection
// (socket, timers, these coroutines) runs on the io_context it was accepted onto, which one thread runs: each
// I/O thread serves many connections, each connection one step at a time, and a connection's steps never
// wake another thread (one io_context run by several threads did, for every read and write: a third of the
// CPU time of a POP3 session went to futexes).
struct Connection {
  Connection(tcp::socket s, Server& srv, Endpoint ep)
      : socket(std::move(s)),
        timer(socket.get_executor()),
        wake(socket.get_executor()),
        server(srv),
        endpoint(std::move(ep)) {}
  tcp::socket socket;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;  // once TLS is on, every byte goes through it
  asio::steady_timer timer;
  asio::steady_timer wake;  // IMAP IDLE: cancelled when the selected mailbox changes
  bool woken = false;
  Server& server;
  Clock::time_point deadline = Clock::time_point::max();  // of the current read or write
  Clock::time_point session_end = Clock::time_point::max();
  bool expired = false;                  // the watchdog cancelled an operation
  bool finished = false;                 // the session is over; the watchdog exits
  std::atomic<bool> delivering = false;  // read by stop() from another thread
  std::string ip;
  Endpoint endpoint;
  // IDLE also looks for changes this often (0: only when woken): a user's session process is not told of
  // deliveries made by the server's process.
  std::chrono::milliseconds idle_check{0};
};

using IoResult = std::tuple<asio::error_code, size_t>;

// Reads what arrived, through TLS once it is on.
awaitable<IoResult> read_some(Connection& c, asio::mutable_buffer b) {
  if (c.tls) co_return co_await c.tls->async_read_some(b, kAsTuple);
  co_return co_await c.socket.async_read_some(b, kAsTuple);
}

awaitable<IoResult> write_all(Connection& c, asio::const_buffer b) {
  if (c.tls) co_return co_await asio::async_write(*c.tls, b, kAsTuple);
  co_return co_await asio::async_write(c.socket, b, kAsTuple);
}

// Sets the deadline of the next read or write; wakes the watchdog when it must fire earlier than planned.
void set_deadline(Connection& c, Clock::time_point t) {
  c.deadline = t;
  if (t < c.timer.expiry()) c.timer.cancel();
}

class Server {
 public:
  // `io`: the listeners' (and the caller's: serve() runs the signals on it); `more_io_threads`: further
  // I/O threads, each running an io_context of its own (start() starts them, join() waits for them).
  // Connections are spread over `io` and those in turn.
  Server(asio::io_context& io, std::shared_ptr<Runtime> rt, int more_io_threads = 0)
      : io_(io), runtime_(std::move(rt)) {
    for (int i = 0; i < more_io_threads; ++i) workers_.push_back(std::make_unique<Worker>());
  }
  // The resolver of the SMTP restrictions that ask DNS; it outlives the server. Without one (a user's session
  // process, which speaks no SMTP) a lookup is a temporary failure.
  void set_resolver(dns::Resolver& resolver) { resolver_ = &resolver; }
  // Told when a message was queued for outbound delivery.
  void set_queue_manager(queue::QueueManager& manager) { queue_manager_ = &manager; }

  Status listen() {
    for (const auto& [key, endpoint] : kEndpoints) {
      if (endpoint.implicit_tls && endpoint.protocol != Service::kSmtp &&
          runtime_->config->get("ssl") == "no") {
        if (!runtime_->config->get_list(key).empty())
          log::info("master", "ssl = no: not listening on {}", key);
        continue;
      }
      if (auto st = listen_service(key, endpoint); !st) return st;
    }
    if (acceptors_.empty())
      return Error{"smtp_listen, imap_listen, pop3_listen, ...: no address to listen on"};
    return Ok{};
  }

  Status listen_service(std::string_view key, const Endpoint& endpoint) {
    auto addrs = listen_addresses(*runtime_->config, key);
    if (!addrs) return addrs.error();
    for (const auto& a : *addrs) {
      asio::error_code ec;
      auto addr = asio::ip::make_address(a.host, ec);
      if (ec) return Error{fmt::format("{}: {}: {}", key, a.host, ec.message())};
      tcp::endpoint ep(addr, a.port);
      tcp::acceptor acc(io_);
      acc.open(ep.protocol(), ec);
      if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec && addr.is_v6()) acc.set_option(asio::ip::v6_only(true), ec);
      if (!ec) acc.bind(ep, ec);
      if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
      if (ec)
        return Error{fmt::format("{}: cannot listen on {}: {}", key, format_endpoint(ep), ec.message())};
      log::info("master", "{} listening on {}", endpoint.name, format_endpoint(ep));
      acceptors_.push_back({std::make_unique<tcp::acceptor>(std::move(acc)), endpoint});
    }
    return Ok{};
  }

  // Starts the delivery threads and the accept loops. `helper`: writes system users' Maildirs (when root).
  void start(delivery::PrivilegedHelper* helper) {
    helper_ = helper;
    use_helper(*runtime_);
    throttle_.set_policy(throttle_policy(*runtime_->config));
    pool_ = std::make_unique<asio::thread_pool>(
        static_cast<size_t>(std::max(1LL, runtime_->config->get_int("delivery_threads"))));
    for (auto& acc : acceptors_)
      asio::co_spawn(acc.acceptor->get_executor(), accept_loop(*acc.acceptor, acc.endpoint), asio::detached);
    for (auto& w : workers_) w->thread = std::thread([&io = w->io] { io.run(); });
  }

  void stop() {
    if (stopping_.exchange(true)) return;
    std::lock_guard lock(mutex_);
    log::info("master", "terminating on signal, {} session(s) open", connections_.size());
    for (auto& acc : acceptors_)
      asio::post(acc.acceptor->get_executor(), [a = acc.acceptor.get()] {
        asio::error_code ec;
        a->close(ec);
      });
    // Idle sessions are told and closed now; a session delivering a message finishes it first.
    for (auto& [ptr, weak] : connections_)
      if (auto c = weak.lock())
        asio::post(c->socket.get_executor(), [c] {
          if (c->delivering) return;
          asio::error_code ec;
          c->socket.cancel(ec);
        });
    // Each I/O thread returns once its sessions have ended.
    for (auto& w : workers_) w->busy.reset();
  }

  // New sessions use the new configuration and certificates; open ones finish with theirs.
  void reload() {
    auto fresh = config::Config::load(runtime()->config->dir());
    if (!fresh) {
      log::error("master", "reload failed, keeping the running configuration: {}", fresh.error().message);
      return;
    }
    auto cfg = std::make_shared<const config::Config>(std::move(*fresh));
    // After the privilege drop, key files (root's, mode 0600) are read through the helper.
    tls::FileReader read = tls::read_directly;
    if (helper_) read = [h = helper_](const std::string& path) { return h->read_tls_file(path); };
    auto rt = make_runtime(cfg, read);
    if (!rt) {
      log::error("master", "reload failed, keeping the running configuration: {}", rt.error().message);
      return;
    }
    use_helper(**rt);
    throttle_.set_policy(throttle_policy(*cfg));
    std::lock_guard lock(mutex_);
    runtime_ = *rt;
    log::info("master", "reload -- configuration {}", cfg->dir());
  }

  static auth::LoginThrottle::Policy throttle_policy(const config::Config& cfg) {
    return {std::chrono::seconds(cfg.get_int("auth_failure_delay")),
            static_cast<int>(cfg.get_int("auth_failure_block_count")),
            std::chrono::seconds(cfg.get_int("auth_failure_block_time"))};
  }

  // Started as root: system users' Maildirs are written, and their passwords checked, by the helper.
  void use_helper(Runtime& rt) {
    rt.delivery->set_privileged_helper(helper_);
    if (helper_)
      rt.passdb->set_system_check([h = helper_](std::string_view user, std::string_view password) {
        return h->check_system_user(user, password);
      });
  }

  // After the caller's io_context has returned from run().
  void join() {
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
    if (pool_) pool_->join();
  }
  bool stopping() const { return stopping_; }

  // The runtime new sessions use (reload() replaces it from another thread).
  std::shared_ptr<Runtime> runtime() {
    std::lock_guard lock(mutex_);
    return runtime_;
  }

  // Connection limits of one protocol (0: none): open connections in all and from one address, and new
  // connections from one address per anvil_rate_time_unit.
  struct Limits {
    long long total = 0, per_ip = 0, rate = 0;
    std::chrono::seconds rate_unit{60};
  };

  // Counts a new connection, unless that would exceed a limit; false (and the connection uncounted) then.
  bool admit(const std::shared_ptr<Connection>& c, const Limits& limits) {
    std::lock_guard lock(mutex_);
    Service p = c->endpoint.protocol;
    auto key = std::make_pair(p, c->ip);
    auto now = Clock::now();
    if (limits.rate > 0) {
      auto& times = recent_[key];
      while (!times.empty() && now - times.front() >= limits.rate_unit) times.pop_front();
      if (static_cast<long long>(times.size()) >= limits.rate) return false;
      times.push_back(now);
      if (recent_.size() > 4 * per_ip_.size() + 1000)  // addresses seen once long ago
        std::erase_if(recent_, [&](const auto& r) { return now - r.second.back() >= limits.rate_unit; });
    }
    if ((limits.total > 0 && open_[p] >= limits.total) ||
        (limits.per_ip > 0 && per_ip_[key] >= limits.per_ip))
      return false;
    ++open_[p];
    ++per_ip_[key];
    connections_[c.get()] = c;
    return true;
  }

  void release(Connection* c) {
    std::lock_guard lock(mutex_);
    if (!connections_.erase(c)) return;
    Service p = c->endpoint.protocol;
    --open_[p];
    auto key = std::make_pair(p, c->ip);
    if (--per_ip_[key] <= 0) per_ip_.erase(key);
  }

  long long open_count(Service p) {
    std::lock_guard lock(mutex_);
    return open_[p];
  }

 private:
  static std::string format_endpoint(const tcp::endpoint& ep) {
    return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                                : fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }

  static std::string client_ip(const tcp::endpoint& remote) {
    return remote.address().is_v6() && remote.address().to_v6().is_v4_mapped()
               ? asio::ip::make_address_v4(asio::ip::v4_mapped, remote.address().to_v6()).to_string()
               : remote.address().to_string();
  }

  awaitable<void> accept_loop(tcp::acceptor& acc, Endpoint endpoint) {
    while (!stopping_) {
      auto [ec, sock] = co_await acc.async_accept(next_context(), kAsTuple);
      if (ec) {
        if (stopping_ || ec == asio::error::operation_aborted) co_return;
        log::warning("master", "accept: {}", ec.message());
        continue;
      }
      // Every reply is written whole: Nagle's algorithm would only hold it back for the client's delayed ACK
      // (40 ms after a TLS handshake, whose last flight the client does not answer).
      asio::error_code nodelay_ec;
      sock.set_option(tcp::no_delay(true), nodelay_ec);
      auto c = std::make_shared<Connection>(std::move(sock), *this, endpoint);
      auto ex = c->socket.get_executor();
      if (endpoint.protocol == Service::kImap) {
        asio::co_spawn(ex, imap_connection(std::move(c)), asio::detached);
      } else if (endpoint.protocol == Service::kPop3) {
        asio::co_spawn(ex, pop3_connection(std::move(c)), asio::detached);
      } else {
        asio::co_spawn(ex, connection(std::move(c)), asio::detached);
      }
    }
  }

  static awaitable<void> watchdog(std::shared_ptr<Connection> c) {
    while (!c->finished) {
      c->timer.expires_at(std::min(c->deadline, c->session_end));
      co_await c->timer.async_wait(kAsTuple);
      if (c->finished) co_return;
      auto now = Clock::now();
      if (now < c->deadline && now < c->session_end) continue;
      asio::error_code ec;
      if (!c->expired) {
        // First expiry: stop the pending read; the session replies 421 and closes.
        c->expired = true;
        c->deadline = now + kFinalWriteTime;
        c->session_end = Clock::time_point::max();
        c->socket.cancel(ec);
      } else {
        c->socket.close(ec);
        co_return;
      }
    }
  }

  // Writes all of `out` and clears it; false when the connection is gone.
  static awaitable<bool> flush(Connection& c, std::string& out, std::chrono::seconds timeout) {
    if (out.empty()) co_return true;
    set_deadline(c, Clock::now() + timeout);
    auto [ec, n] = co_await write_all(c, asio::buffer(out));
    out.clear();
    co_return !ec;
  }

  // Runs the server side of a TLS handshake on `c` (implicit TLS, or after STARTTLS/STLS; the caller has
  // dropped whatever the client sent before). False, logged, when it fails or times out.
  static awaitable<std::optional<tls::Info>> start_tls(Connection& c, const Runtime& rt,
                                                       std::string_view log_as) {
    // No certificates: a reload turned TLS off while an implicit-TLS listener stays open.
    SSL* ssl = rt.tls ? SSL_new(rt.tls->context(c.endpoint.name)) : nullptr;
    if (!ssl) {
      log::warning(log_as, "TLS connection from {} refused: no certificate loaded", c.ip);
      co_return std::nullopt;
    }
    c.tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(c.socket, ssl);
    set_deadline(c, Clock::now() + std::chrono::seconds(rt.config->get_int("tls_handshake_timeout")));
    auto [ec] = co_await c.tls->async_handshake(asio::ssl::stream_base::server, kAsTuple);
    if (ec) {
      log::info(log_as, "TLS handshake failed from {}: {}", c.ip, c.expired ? "timeout" : ec.message());
      co_return std::nullopt;
    }
    tls::Info info = tls::describe(ssl);
    log::info(log_as, "TLS connection established from {}: {} with cipher {} ({} bits)", c.ip, info.protocol,
              info.cipher, info.bits);
    co_return info;
  }

  // Ends a connection: TLS close_notify when TLS is on (briefly: the client may be gone), then the socket.
  static awaitable<void> close(Connection& c) {
    if (c.tls && !c.expired) {
      set_deadline(c, Clock::now() + std::chrono::seconds(2));
      co_await c.tls->async_shutdown(kAsTuple);
    }
    c.finished = true;
    c.timer.cancel();
    c.wake.cancel();
    asio::error_code ec;
    c.socket.close(ec);
  }

  // Reads more bytes into `lines`; false on EOF, error, timeout or stop.
  static awaitable<bool> read_more(Connection& c, smtp::proto::LineBuffer& lines, std::string& buf,
                                   std::chrono::seconds timeout) {
    set_deadline(c, Clock::now() + timeout);
    buf.resize(kReadChunk);
    auto [ec, n] = co_await read_some(c, asio::buffer(buf));
    if (ec) co_return false;
    lines.append(std::string_view(buf.data(), n));
    co_return true;
  }

  awaitable<void> connection(std::shared_ptr<Connection> c) {
    auto rt = runtime();
    asio::error_code ec;
    auto remote = c->socket.remote_endpoint(ec);
    if (ec) co_return;
    c->ip = client_ip(remote);
    const config::Config& cfg = *rt->config;
    const std::string& service = c->endpoint.name;
    auto settings = smtp::server::Settings::from_config(cfg, service, rt->tls != nullptr);
    settings.policy = rt->policies.at(service);
    std::string out;

    // Connection limits: overall, then per client address.
    Limits limits{cfg.get_int("smtpd_connection_limit", service),
                  cfg.get_int("smtpd_client_connection_count_limit", service),
                  cfg.get_int("smtpd_client_connection_rate_limit", service),
                  std::chrono::seconds(cfg.get_int("anvil_rate_time_unit"))};
    if (co_await refuse_blocked(
            *c, smtp::proto::Reply(
                    421, "4.7.0",
                    settings.hostname + " Error: too many failed logins from " + c->ip + ", try again later")
                    .render()))
      co_return;
    if (!admit(c, limits)) {
      log::warning("smtpd", "too many connections from {} ({} open in all)", c->ip,
                   open_count(Service::kSmtp));
      out = smtp::proto::Reply(421, "4.7.0", settings.hostname + " Error: too many connections from " + c->ip)
                .render();
      c->deadline = Clock::now() + kFinalWriteTime;
      if (!c->endpoint.implicit_tls) co_await asio::async_write(c->socket, asio::buffer(out), kAsTuple);
      co_return;
    }
    c->session_end = Clock::now() + std::chrono::seconds(cfg.get_int("smtpd_session_time_limit"));
    asio::co_spawn(c->socket.get_executor(), watchdog(c), asio::detached);

    smtp::server::Client client{c->ip};
    log::info("smtpd", "connect from {}", client.log_name());
    auto delivery = rt->delivery;
    smtp::server::Session session(settings, client, [delivery](std::string_view l, std::string_view d) {
      return delivery->resolve(l, d);
    });
    session.set_credentials(*rt->passdb);
    session.set_sender_owner([delivery](std::string_view login, std::string_view address) {
      return delivery->owns(login, address);
    });
    if (c->endpoint.implicit_tls) {
      if (auto info = co_await start_tls(*c, *rt, "smtpd")) {
        session.set_tls(*info);
        co_await run_session(*c, session, *rt, out);
      }
    } else {
      co_await run_session(*c, session, *rt, out);
    }
    log::info("smtpd", "disconnect from {} {}", client.log_name(), session.command_summary());

    co_await close(*c);
    release(c.get());
  }

  awaitable<void> run_session(Connection& c, smtp::server::Session& session, const Runtime& rt,
                              std::string& out) {
    const config::Config& cfg = *rt.config;
    auto timeout = std::chrono::seconds(cfg.get_int("smtpd_timeout"));
    auto error_sleep = std::chrono::seconds(cfg.get_int("smtpd_error_sleep_time"));
    auto pregreet_wait = std::chrono::seconds(cfg.get_int("smtpd_pregreet_wait"));
    smtp::proto::LineBuffer lines(static_cast<size_t>(cfg.get_int("line_length_limit")));
    std::string buf;

    auto send_final = [&](smtp::proto::Reply r) -> awaitable<void> {
      out += r.render();
      co_await flush(c, out, std::chrono::duration_cast<std::chrono::seconds>(kFinalWriteTime));
    };
    auto lost = [&]() -> awaitable<void> {
      // Read failed: timeout, shutdown, or the client went away.
      if (c.expired) {
        log::info("smtpd", "timeout after {} from {}", session.in_transaction() ? "transaction" : "command",
                  session.client().log_name());
        co_await send_final(
            smtp::proto::Reply(421, "4.4.2", cfg.get("myhostname") + " Error: timeout exceeded"));
      } else if (stopping_) {
        co_await send_final(
            smtp::proto::Reply(421, "4.3.2", cfg.get("myhostname") + " Service shutting down"));
      } else {
        log::info("smtpd", "lost connection{} from {}", session.in_transaction() ? " in transaction" : "",
                  session.client().log_name());
      }
    };

    if (pregreet_wait.count() > 0) {
      asio::steady_timer t(c.socket.get_executor(), pregreet_wait);
      co_await t.async_wait(kAsTuple);
    }
    asio::error_code ec;
    if (!c.tls && c.socket.available(ec) > 0) {
      auto step = session.pregreet();
      for (auto& r : step.replies) out += r.render();
      co_await flush(c, out, timeout);
      co_return;
    }
    out += session.greeting().render();

    while (true) {
      std::string_view line;
      auto status = lines.next(line);
      if (status == smtp::proto::LineBuffer::Status::kNeedMore) {
        if (!co_await flush(c, out, timeout)) co_return;
        if (stopping_) co_return co_await lost();
        if (!co_await read_more(c, lines, buf, timeout)) co_return co_await lost();
        continue;
      }
      smtp::server::Step step;
      if (status == smtp::proto::LineBuffer::Status::kTooLong) {
        step = session.line_too_long();
      } else if (smtp::server::Session::may_block(line)) {
        std::string command(line);
        int failures = session.auth_failures();
        bool was_in = logged_in(session);
        if (!co_await smtp_on_pool(c, step, [&] { return session.command(command, !lines.empty()); }))
          co_return;
        co_await throttle(c, session, failures, was_in);
      } else {
        int failures = session.auth_failures();
        step = session.command(line, !lines.empty());
        co_await throttle(c, session, failures, true);
      }
      while (true) {
        if (step.delay) {
          if (!co_await flush(c, out, timeout)) co_return;
          asio::steady_timer t(c.socket.get_executor(), error_sleep);
          co_await t.async_wait(kAsTuple);
        }
        for (auto& r : step.replies)
          if (r.code) out += r.render();
        if (step.next == smtp::server::Next::kClose) {
          co_await flush(c, out, timeout);
          co_return;
        }
        if (step.next == smtp::server::Next::kCommand) break;
        if (step.next == smtp::server::Next::kStartTls) {
          if (!co_await flush(c, out, timeout)) co_return;
          lines.clear();  // RFC 3207 / CVE-2011-0411: nothing sent before the handshake is a command
          auto info = co_await start_tls(c, rt, "smtpd");
          if (!info) co_return;
          session.set_tls(*info);
          break;
        }
        if (step.next == smtp::server::Next::kData) {
          if (!co_await flush(c, out, timeout)) co_return;
          auto& reader = session.data_reader();
          while (true) {
            size_t used = reader.feed(lines.pending(), session.content());
            lines.consume(used);
            if (reader.done()) break;
            if (!co_await read_more(c, lines, buf, timeout)) co_return co_await lost();
          }
          step = session.data_done();
          continue;
        }
        if (step.next == smtp::server::Next::kBdat) {
          uint64_t left = step.bdat_size;
          while (left > 0) {
            if (lines.empty() && !co_await read_more(c, lines, buf, timeout)) co_return co_await lost();
            std::string_view avail = lines.pending();
            size_t take = static_cast<size_t>(std::min<uint64_t>(left, avail.size()));
            if (!step.bdat_discard) session.bdat_feed(avail.substr(0, take));
            lines.consume(take);
            left -= take;
          }
          if (step.bdat_discard) {
            // The refusal was rendered before the chunk was read; now the session goes on.
            break;
          }
          step = session.bdat_done();
          continue;
        }
        if (step.next == smtp::server::Next::kAuth) {
          // One response line of the AUTH exchange; checking it may hash a password.
          if (!co_await flush(c, out, timeout)) co_return;
          while ((status = lines.next(line)) == smtp::proto::LineBuffer::Status::kNeedMore)
            if (!co_await read_more(c, lines, buf, timeout)) co_return co_await lost();
          std::string response(status == smtp::proto::LineBuffer::Status::kLine ? line : "*");
          int failures = session.auth_failures();
          bool was_in = logged_in(session);
          if (!co_await smtp_on_pool(c, step, [&] { return session.auth_line(response); })) co_return;
          co_await throttle(c, session, failures, was_in);
          continue;
        }
        if (step.next == smtp::server::Next::kLookup) {
          // A restriction asks DNS (reject_unknown_recipient_domain): the resolver ends every lookup in time.
          int failures = session.auth_failures();
          dns::MailDomain found = dns::MailDomain::kTempFail;
          if (resolver_) found = co_await dns::mail_domain(*resolver_, step.lookup);
          step = session.looked_up(found);
          co_await throttle(c, session, failures, true);
          continue;
        }
        if (step.next == smtp::server::Next::kDeliver) {
          step = session.delivered(co_await deliver(c, session, rt));
          if (stopping_) {
            for (auto& r : step.replies) out += r.render();
            co_return co_await send_final(
                smtp::proto::Reply(421, "4.3.2", cfg.get("myhostname") + " Service shutting down"));
          }
          continue;
        }
      }
    }
  }

  // Runs `work` on a worker thread (it may block on Maildir I/O or crypt); resumes on the I/O thread.
  template <class F, class R = std::invoke_result_t<F>>
  awaitable<R> on_pool(Connection& c, F work) {
    c.delivering = true;
    auto task = [&]() -> awaitable<R> { co_return work(); };
    auto [ep, next] = co_await asio::co_spawn(pool_->get_executor(), std::move(task), kAsTuple);
    c.delivering = false;
    if (ep) co_return R::kClose;
    co_return next;
  }

  static bool logged_in(const imap::server::Session& s) { return s.authenticated(); }
  static bool logged_in(const pop3::server::Session& s) { return s.authenticated(); }
  static bool logged_in(const smtp::server::Session& s) { return !s.sasl_user().empty(); }
  static const std::string& login_name(const imap::server::Session& s) { return s.user(); }
  static const std::string& login_name(const pop3::server::Session& s) { return s.user(); }
  static const std::string& login_name(const smtp::server::Session& s) { return s.sasl_user(); }

  // After a session step: a failed login is answered only after the throttle's delay (the answer is still
  // in the output buffer); the first successful login clears the client's address and user.
  template <class S>
  awaitable<void> throttle(Connection& c, const S& session, int failures_before, bool was_logged_in) {
    if (session.auth_failures() > failures_before) {
      auto delay = throttle_.failed(c.ip, session.failed_login());
      if (delay.count() > 0) {
        asio::steady_timer t(c.socket.get_executor(), delay);
        co_await t.async_wait(kAsTuple);
      }
    } else if (!was_logged_in && logged_in(session)) {
      throttle_.succeeded(c.ip, login_name(session));
    }
  }

  // A client whose address is blocked for failed logins (not on port 25, where mail comes in) is told so
  // and disconnected; with implicit TLS it is disconnected at once.
  awaitable<bool> refuse_blocked(Connection& c, std::string_view text) {
    auto left = throttle_.blocked(c.ip);
    if (left.count() == 0 || c.endpoint.name == "smtp") co_return false;
    log::info("auth", "{}: refused, blocked {}s more for failed logins", c.ip, left.count());
    if (!c.endpoint.implicit_tls) {
      c.deadline = Clock::now() + kFinalWriteTime;
      co_await asio::async_write(c.socket, asio::buffer(text), kAsTuple);
    }
    co_return true;
  }

  // Runs an IMAP or POP3 session step on a worker thread, then throttles a login it failed.
  template <class S, class F, class R = std::invoke_result_t<F>>
  awaitable<R> login_step(Connection& c, S& session, F work) {
    int failures = session.auth_failures();
    bool was_in = logged_in(session);
    R next = co_await on_pool(c, std::move(work));
    co_await throttle(c, session, failures, was_in);
    co_return next;
  }

  // Runs an SMTP session step on a worker thread; false when it failed with an exception.
  template <class F>
  awaitable<bool> smtp_on_pool(Connection& c, smtp::server::Step& step, F work) {
    bool done = false;
    co_await on_pool(c, [&] {
      step = work();
      done = true;
      return step.next;
    });
    co_return done;
  }

  // A system user logged in while Postern runs as root: the helper starts the session in a process of the
  // user's own (Dovecot's imap-login -> imap split), and this connection becomes a proxy: TLS stays here,
  // plaintext goes to that process over a socket pair. `pending`: what the client sent after the login.
  // `failure`: the answer when the process cannot be started.
  awaitable<void> handoff(Connection& c, std::string_view protocol, const std::string& token,
                          const std::string& tag, std::string pending, bool tls, std::string failure) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      co_await flush(c, failure, std::chrono::seconds(60));
      co_return;
    }
    asio::local::stream_protocol::socket peer(c.socket.get_executor());
    peer.assign(asio::local::stream_protocol(), pair[0]);
    // The helper's answer: empty when the process runs, else why not.
    auto start = [&, theirs = pair[1]]() -> awaitable<std::string> {
      auto st = helper_->start_session(token, protocol, tag, tls, c.ip, theirs);
      co_return st ? std::string() : st.error().message;
    };
    auto [ep, why] = co_await asio::co_spawn(pool_->get_executor(), std::move(start), kAsTuple);
    ::close(pair[1]);
    if (ep || !why.empty()) {
      log::error(protocol == "imap" ? "imap" : "pop3", "user session process: {}", ep ? "exception" : why);
      co_await flush(c, failure, std::chrono::seconds(60));
      co_return;
    }
    set_deadline(c, Clock::time_point::max());  // the user's process keeps the session's time limits
    if (!pending.empty()) co_await asio::async_write(peer, asio::buffer(pending), kAsTuple);
    auto upstream = [&]() -> awaitable<void> {
      std::string b(kImapReadChunk, '\0');
      while (true) {
        auto [ec, n] = co_await read_some(c, asio::buffer(b));
        if (ec) co_return;
        auto [wec, w] = co_await asio::async_write(peer, asio::buffer(b.data(), n), kAsTuple);
        if (wec) co_return;
      }
    };
    auto downstream = [&]() -> awaitable<void> {
      std::string b(kImapReadChunk, '\0');
      while (true) {
        auto [ec, n] = co_await peer.async_read_some(asio::buffer(b), kAsTuple);
        if (ec) co_return;
        auto [wec, w] = co_await write_all(c, asio::buffer(b.data(), n));
        if (wec) co_return;
      }
    };
    using namespace asio::experimental::awaitable_operators;
    co_await (upstream() || downstream());
  }

 public:
  // In a user's session process: serves the handed-off connection on descriptor `fd` as `account`.
  void start_user_session(int fd, Service protocol, auth::Account account, std::string tag, bool tls,
                          std::string ip) {
    pool_ = std::make_unique<asio::thread_pool>(1);
    tcp::socket sock(io_);
    sock.assign(tcp::v4(), fd);  // a Unix stream socket: only read and written here
    auto c = std::make_shared<Connection>(std::move(sock), *this,
                                          Endpoint{protocol, protocol == Service::kImap ? "imap" : "pop3"});
    c->ip = std::move(ip);
    c->idle_check = std::chrono::seconds(1);
    asio::co_spawn(io_, user_session(std::move(c), std::move(account), std::move(tag), tls), asio::detached);
  }

 private:
  awaitable<void> user_session(std::shared_ptr<Connection> c, auth::Account account, std::string tag,
                               bool tls) {
    auto rt = runtime();
    const config::Config& cfg = *rt->config;
    admit(c, Limits{});
    asio::co_spawn(c->socket.get_executor(), watchdog(c), asio::detached);
    tls::Info info;
    info.active = tls;
    std::string out;
    // The login was checked by the server's process: no other login happens here.
    auto refuse = [](std::string_view) { return imap::server::Session::LoginResult{}; };
    if (c->endpoint.protocol == Service::kImap) {
      imap::server::Session session(imap::server::Settings::from_config(cfg, false), c->ip, *rt->passdb,
                                    refuse);
      if (tls) session.set_tls(info);
      auto next = co_await on_pool(*c, [&] { return session.resume_login(tag, account, out); });
      if (next == imap::server::Next::kCommand) {
        co_await run_imap(*c, session, *rt, std::move(out));
      } else {
        co_await flush(*c, out, std::chrono::seconds(60));
      }
      log::info("imap", "Disconnected: user=<{}>, rip={}, {}", session.user(), c->ip, session.summary());
    } else {
      pop3::server::Session session(pop3::server::Settings::from_config(cfg, false), c->ip, *rt->passdb,
                                    [](std::string_view) { return std::optional<auth::Account>(); });
      if (tls) session.set_tls(info);
      auto next = co_await on_pool(*c, [&] { return session.resume_login(account, out); });
      if (next == pop3::server::Next::kCommand) {
        co_await run_pop3(*c, session, *rt, std::move(out));
      } else {
        co_await flush(*c, out, std::chrono::seconds(60));
      }
      log::info("pop3", "Disconnected: user=<{}>, rip={}, {}", session.user(), c->ip, session.summary());
    }
    co_await close(*c);
    release(c.get());
  }

  awaitable<void> imap_connection(std::shared_ptr<Connection> c) {
    auto rt = runtime();
    const config::Config& cfg = *rt->config;
    asio::error_code ec;
    auto remote = c->socket.remote_endpoint(ec);
    if (ec) co_return;
    c->ip = client_ip(remote);
    Limits limits{cfg.get_int("imap_connection_limit"), cfg.get_int("login_client_connection_count_limit"),
                  cfg.get_int("login_client_connection_rate_limit"),
                  std::chrono::seconds(cfg.get_int("anvil_rate_time_unit"))};
    if (co_await refuse_blocked(*c,
                                "* BYE [UNAVAILABLE] Too many failed logins from your address, try again "
                                "later.\r\n"))
      co_return;
    if (!admit(c, limits)) {
      log::warning("imap", "too many connections ({} open), refusing {}", open_count(Service::kImap), c->ip);
      std::string bye = "* BYE [UNAVAILABLE] Too many connections, try again later.\r\n";
      c->deadline = Clock::now() + kFinalWriteTime;
      if (!c->endpoint.implicit_tls) co_await asio::async_write(c->socket, asio::buffer(bye), kAsTuple);
      co_return;
    }
    asio::co_spawn(c->socket.get_executor(), watchdog(c), asio::detached);
    log::info("imap-login", "connect from {}", c->ip);
    auto passdb = rt->passdb;
    long long per_user_ip = cfg.get_int("mail_max_userip_connections");
    auto limiter = user_ip_;
    std::string ip = c->ip;
    imap::server::Session session(imap::server::Settings::from_config(cfg, rt->tls != nullptr), c->ip,
                                  *passdb, [passdb, limiter, ip, per_user_ip](std::string_view u) {
                                    imap::server::Session::LoginResult r;
                                    r.account = passdb->account(u);
                                    if (!r.account) return r;
                                    r.slot = limiter->acquire(r.account->user, ip, per_user_ip);
                                    if (!r.slot) {
                                      r.account.reset();
                                      r.over_limit = true;
                                    }
                                    return r;
                                  });
    // Woken from any thread when the selected mailbox changes: hop to the I/O thread, flag, cancel the wait.
    std::weak_ptr<Connection> weak = c;
    session.set_wake([weak, ex = c->socket.get_executor()] {
      asio::post(ex, [weak] {
        if (auto conn = weak.lock()) {
          conn->woken = true;
          conn->wake.cancel();
        }
      });
    });
    std::optional<tls::Info> implicit;
    if (!c->endpoint.implicit_tls || (implicit = co_await start_tls(*c, *rt, "imap-login"))) {
      if (implicit) session.set_tls(*implicit);
      co_await run_imap(*c, session, *rt, session.greeting());
    }
    log::info("imap", "Disconnected{}: user=<{}>, rip={}, {}", stopping_ ? " for shutdown" : "",
              session.user(), c->ip, session.summary());
    co_await close(*c);
    release(c.get());
  }

  // `out`: what to send first (the greeting, or the answer to a handed-off login).
  awaitable<void> run_imap(Connection& c, imap::server::Session& session, const Runtime& rt,
                           std::string out) {
    const config::Config& cfg = *rt.config;
    using imap::proto::CommandReader;
    using imap::server::Next;
    // RFC 9051 5.4: at least 30 minutes of inactivity before an autologout; IDLE included.
    auto idle_timeout = std::chrono::seconds(cfg.get_int("imap_idle_timeout"));
    auto login_timeout = std::chrono::seconds(cfg.get_int("imap_login_timeout"));
    imap::proto::ReaderLimits limits;
    limits.max_line = static_cast<size_t>(cfg.get_int("imap_max_line_length"));
    limits.max_append_literal = static_cast<uint64_t>(cfg.get_int("message_size_limit"));
    // A METADATA value may be larger than other literals.
    limits.max_literal = std::max<size_t>(limits.max_literal, cfg.get_int("imap_metadata_max_size"));
    CommandReader reader(limits);
    std::string buf;
    auto timeout = [&] { return session.authenticated() ? idle_timeout : login_timeout; };
    // COMPRESS=DEFLATE, once the client asked for it: everything after the OK is compressed.
    std::unique_ptr<Deflate> deflate;
    std::string wire;
    auto take = [&](std::string_view bytes) {
      if (!deflate) {
        reader.append(bytes);
        return true;
      }
      std::string plain;
      if (!deflate->decompress(bytes, plain)) return false;
      reader.append(plain);
      return true;
    };
    auto send = [&](std::chrono::seconds t) -> awaitable<bool> {
      if (!deflate || out.empty()) co_return co_await flush(c, out, t);
      if (!deflate->compress(out, wire)) co_return false;
      out.clear();
      co_return co_await flush(c, wire, t);
    };
    auto read_more = [&]() -> awaitable<bool> {
      set_deadline(c, Clock::now() + timeout());
      buf.resize(kImapReadChunk);
      auto [rec, n] = co_await read_some(c, asio::buffer(buf));
      if (rec) co_return false;
      co_return take(std::string_view(buf.data(), n));
    };
    auto lost = [&]() -> awaitable<void> {
      if (c.expired) {
        session.bye("Disconnected for inactivity.", out);
      } else if (stopping_) {
        session.bye("Server shutting down.", out);
      } else {
        co_return;
      }
      co_await send(std::chrono::duration_cast<std::chrono::seconds>(kFinalWriteTime));
    };
    auto write_timeout = std::chrono::seconds(60);
    // A long response (a FETCH of many messages) is written as it is made: the worker thread running the
    // command hands it to this I/O thread, which is waiting for the command meanwhile, and waits for the
    // write.
    session.set_output_drain([&] {
      std::promise<bool> promise;
      auto written = promise.get_future();
      asio::co_spawn(
          c.socket.get_executor(),
          [&]() -> awaitable<bool> {
            bool sent = co_await send(write_timeout);
            // The rest of the command has the deadline it had before (the idle timeout), not the write's.
            set_deadline(c, Clock::now() + timeout());
            co_return sent;
          },
          [promise = std::move(promise)](std::exception_ptr ep, bool ok) mutable {
            promise.set_value(!ep && ok);
          });
      try {
        return written.get();
      } catch (const std::future_error&) {  // the I/O thread stopped before it wrote
        return false;
      }
    });
    while (true) {
      auto status = reader.next();
      Next next = Next::kCommand;
      switch (status) {
        case CommandReader::Status::kNeedMore:
          if (!co_await send(write_timeout)) co_return;
          if (stopping_ || !co_await read_more()) co_return co_await lost();
          continue;
        case CommandReader::Status::kContinue:
          out += "+ OK\r\n";
          continue;
        case CommandReader::Status::kLineTooLong:
          next = session.refuse(reader.tag(), "[TOOBIG] Command line too long.", out);
          break;
        case CommandReader::Status::kLiteralTooBig:
          next = session.literal_too_big(reader.tag(), reader.name(), reader.literal_size(), out);
          break;
        case CommandReader::Status::kCommand: {
          std::string command(reader.command());
          next = co_await login_step(c, session, [&] { return session.execute(command, out); });
          break;
        }
      }
      while (next == Next::kAuthenticate) {
        if (!co_await send(write_timeout)) co_return;
        std::string line;
        while (!reader.next_line(line))
          if (stopping_ || !co_await read_more()) co_return co_await lost();
        next = co_await login_step(c, session, [&] { return session.auth_line(line, out); });
      }
      if (next == Next::kIdle) {
        using namespace asio::experimental::awaitable_operators;
        c.woken = false;
        while (true) {
          if (!co_await send(write_timeout)) co_return;
          std::string line;
          if (reader.next_line(line)) {
            next = co_await on_pool(c, [&] { return session.idle_line(line, out); });
            break;
          }
          if (stopping_) co_return co_await lost();
          if (c.woken) {
            c.woken = false;
            co_await on_pool(c, [&] {
              session.idle_poll(out);
              return Next::kIdle;
            });
            continue;
          }
          set_deadline(c, Clock::now() + idle_timeout);
          c.wake.expires_at(c.idle_check.count() ? Clock::now() + c.idle_check : Clock::time_point::max());
          // Thousands of sessions idle at once: each keeps only a small buffer meanwhile.
          buf.resize(kIdleReadChunk);
          buf.shrink_to_fit();
          auto result = co_await (read_some(c, asio::buffer(buf)) || c.wake.async_wait(kAsTuple));
          if (result.index() == 0) {
            auto [rec, n] = std::get<0>(result);
            if (rec || !take(std::string_view(buf.data(), n))) co_return co_await lost();
          } else if (auto [wec] = std::get<1>(result); !wec) {
            c.woken = true;  // idle_check elapsed
          }
        }
      }
      if (next == Next::kCompress) {
        // The OK goes out uncompressed; bytes the client pipelined after COMPRESS are already compressed.
        if (!co_await send(write_timeout)) co_return;
        deflate = std::make_unique<Deflate>();
        std::string pending = reader.take_pending();
        if (!take(pending)) co_return;
        continue;
      }
      if (next == Next::kHandoff) {
        if (!co_await send(write_timeout)) co_return;
        co_return co_await handoff(
            c, "imap", session.account().session_token, session.handoff_tag(), reader.take_pending(),
            session.tls().active,
            session.handoff_tag() + " NO [UNAVAILABLE] Mailbox is not available, try again later.\r\n");
      }
      if (next == Next::kStartTls) {
        if (!co_await send(write_timeout)) co_return;
        reader.clear();  // RFC 2595 / CVE-2011-0411: nothing sent before the handshake is a command
        auto info = co_await start_tls(c, rt, "imap-login");
        if (!info) co_return;
        session.set_tls(*info);
        continue;
      }
      if (next == Next::kClose) {
        co_await send(write_timeout);
        co_return;
      }
    }
  }

  awaitable<void> pop3_connection(std::shared_ptr<Connection> c) {
    auto rt = runtime();
    const config::Config& cfg = *rt->config;
    asio::error_code ec;
    auto remote = c->socket.remote_endpoint(ec);
    if (ec) co_return;
    c->ip = client_ip(remote);
    if (co_await refuse_blocked(*c,
                                "-ERR [LOGIN-DELAY] Too many failed logins from your address, try again "
                                "later.\r\n"))
      co_return;
    Limits limits{0, cfg.get_int("login_client_connection_count_limit"),
                  cfg.get_int("login_client_connection_rate_limit"),
                  std::chrono::seconds(cfg.get_int("anvil_rate_time_unit"))};
    if (!admit(c, limits)) {
      log::warning("pop3", "too many connections from {}", c->ip);
      std::string refusal = "-ERR [SYS/TEMP] Too many connections from your address, try again later.\r\n";
      c->deadline = Clock::now() + kFinalWriteTime;
      if (!c->endpoint.implicit_tls) co_await asio::async_write(c->socket, asio::buffer(refusal), kAsTuple);
      co_return;
    }
    asio::co_spawn(c->socket.get_executor(), watchdog(c), asio::detached);
    log::info("pop3-login", "connect from {}", c->ip);
    auto passdb = rt->passdb;
    pop3::server::Session session(pop3::server::Settings::from_config(cfg, rt->tls != nullptr), c->ip,
                                  *passdb, [passdb](std::string_view u) { return passdb->account(u); });
    std::optional<tls::Info> implicit;
    if (!c->endpoint.implicit_tls || (implicit = co_await start_tls(*c, *rt, "pop3-login"))) {
      if (implicit) session.set_tls(*implicit);
      co_await run_pop3(*c, session, *rt, session.greeting());
    }
    log::info("pop3", "Disconnected: user=<{}>, rip={}, {}", session.user(), c->ip, session.summary());
    co_await close(*c);
    release(c.get());
  }

  awaitable<void> run_pop3(Connection& c, pop3::server::Session& session, const Runtime& rt,
                           std::string out) {
    using pop3::server::Next;
    using Status = smtp::proto::LineBuffer::Status;
    const config::Config& cfg = *rt.config;
    auto timeout = std::chrono::seconds(cfg.get_int("pop3_idle_timeout"));
    auto write_timeout = std::chrono::seconds(60);
    smtp::proto::LineBuffer lines(static_cast<size_t>(cfg.get_int("imap_max_line_length")));
    std::string buf;
    while (true) {
      std::string_view line;
      auto status = lines.next(line);
      if (status == Status::kNeedMore) {
        if (!co_await flush(c, out, write_timeout)) co_return;
        if (stopping_ || !co_await read_more(c, lines, buf, timeout)) {
          if (c.expired) out += "-ERR Disconnected for inactivity.\r\n";
          if (stopping_) out += "-ERR Server shutting down.\r\n";
          co_await flush(c, out, write_timeout);
          co_return;
        }
        continue;
      }
      Next next;
      if (status == Status::kTooLong) {
        next = session.line_too_long(out);
      } else {
        std::string command(line);
        if (session.may_block(command))
          next = co_await login_step(c, session, [&] { return session.command(command, out); });
        else
          next = session.command(command, out);
        while (next == Next::kAuthenticate) {
          if (!co_await flush(c, out, write_timeout)) co_return;
          while ((status = lines.next(line)) == Status::kNeedMore)
            if (stopping_ || !co_await read_more(c, lines, buf, timeout)) break;
          if (status != Status::kLine) co_return;
          std::string response(line);
          next = co_await login_step(c, session, [&] { return session.auth_line(response, out); });
        }
      }
      if (next == Next::kHandoff) {
        if (!co_await flush(c, out, write_timeout)) co_return;
        std::string pending(lines.pending());
        co_return co_await handoff(c, "pop3", session.account().session_token, "", std::move(pending),
                                   session.tls().active,
                                   "-ERR [SYS/TEMP] Mailbox is not available, try again later.\r\n");
      }
      if (next == Next::kStartTls) {
        if (!co_await flush(c, out, write_timeout)) co_return;
        lines.clear();  // RFC 2595 / CVE-2011-0411: nothing sent before the handshake is a command
        auto info = co_await start_tls(c, rt, "pop3-login");
        if (!info) co_return;
        session.set_tls(*info);
      }
      if (next == Next::kClose) {
        co_await flush(c, out, write_timeout);
        co_return;
      }
    }
  }

  // Runs the delivery on a worker thread; the session coroutine resumes on the I/O thread.
  awaitable<store::StoreError> deliver(Connection& c, smtp::server::Session& session, const Runtime& rt) {
    c.delivering = true;
    c.deadline = Clock::time_point::max();
    std::string header = session.received_header();
    auto work = [&]() -> awaitable<delivery::DeliveryOutcome> {
      co_return delivery::deliver_and_queue(*rt.delivery, *rt.spool, rt.dkim.get(), session.envelope(),
                                            header, session.content());
    };
    auto [ep, outcome] = co_await asio::co_spawn(pool_->get_executor(), std::move(work), kAsTuple);
    c.delivering = false;
    if (ep) co_return store::StoreError{store::ErrorKind::kTemporary, "delivery failed with an exception"};
    if (outcome.error.ok() && queue_manager_ && outcome.queued) queue_manager_->wake();
    co_return outcome.error;
  }

  // The I/O contexts new connections go to, in turn.
  asio::io_context& next_context() {
    size_t n = next_io_.fetch_add(1) % (workers_.size() + 1);
    return n == 0 ? io_ : workers_[n - 1]->io;
  }

  asio::io_context& io_;
  struct Worker {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> busy{io.get_executor()};
    std::thread thread;
  };
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> next_io_ = 0;
  std::unique_ptr<asio::thread_pool> pool_;
  delivery::PrivilegedHelper* helper_ = nullptr;
  dns::Resolver* resolver_ = nullptr;
  queue::QueueManager* queue_manager_ = nullptr;
  std::shared_ptr<Runtime> runtime_;
  struct Listener {
    std::unique_ptr<tcp::acceptor> acceptor;
    Endpoint endpoint;
  };
  std::vector<Listener> acceptors_;
  std::shared_ptr<UserIpLimiter> user_ip_ = std::make_shared<UserIpLimiter>();
  auth::LoginThrottle throttle_;
  std::atomic<bool> stopping_ = false;
  // Shared by the I/O threads: the current runtime and the open connections.
  std::mutex mutex_;
  std::map<Connection*, std::weak_ptr<Connection>> connections_;
  std::map<Service, long long> open_;  // connections per protocol, for smtpd_ and imap_connection_limit
  std::map<std::pair<Service, std::string>, long long> per_ip_;
  std::map<std::pair<Service, std::string>, std::deque<Clock::time_point>> recent_;  // for the rate limits
};

// Started as root: chown what the unprivileged server writes, fork the privileged helper, drop to mail_owner.
Result<std::unique_ptr<delivery::PrivilegedHelper>> separate_privileges(const config::Config& cfg) {
  std::string owner = cfg.get("mail_owner");
  passwd* pw = ::getpwnam(owner.c_str());
  if (!pw)
    return Error{
        fmt::format("mail_owner: no such user \"{}\" (create it: useradd --system --home-dir /nonexistent "
                    "--shell /usr/sbin/nologin {}; scripts/install-deps.sh does)",
                    owner, owner)};
  if (pw->pw_uid == 0)
    return Error{fmt::format("mail_owner: \"{}\" is root; it must be an unprivileged user", owner)};
  uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  std::string queue = cfg.get_path("queue_directory");
  std::vector<std::string> owned = queue::Spool(queue).directories();
  owned.push_back(queue);
  owned.push_back(queue + "/pid");
  for (const std::string& d : owned)
    if (::chown(d.c_str(), uid, gid) != 0)
      return Error{fmt::format("queue_directory: chown {} to {}: {}", d, owner, std::strerror(errno))};
  if (!cfg.get_list("virtual_mailbox_domains").empty()) {
    std::string base = cfg.get_path("virtual_mailbox_base");
    struct stat st;
    if (::stat(base.c_str(), &st) != 0) {
      if (auto made = store::maildir::make_directory(base, 0755, {true, uid, gid}); !made)
        return made.error();
    } else if (st.st_uid != uid) {
      log::warning("master",
                   "virtual_mailbox_base {} is not owned by mail_owner {}: deliveries into it may fail", base,
                   owner);
    }
  }
  auto helper = delivery::PrivilegedHelper::start(
      cfg, static_cast<int>(std::max(1LL, cfg.get_int("delivery_threads"))));
  if (!helper) return helper.error();
  if (auto st = delivery::drop_privileges(uid, gid); !st) return st.error();
  // Fail now, not with a 451 per message, when mail_owner cannot reach what it must write (e.g. the
  // configuration lives under a home directory that others may not enter).
  std::vector<std::string> writable = {queue};
  if (!cfg.get_list("virtual_mailbox_domains").empty())
    writable.push_back(cfg.get_path("virtual_mailbox_base"));
  for (const auto& dir : writable)
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      return Error{
          fmt::format("mail_owner {} cannot write {}: {} (every parent directory must be searchable "
                      "by {}, and the directory writable)",
                      owner, dir, std::strerror(errno), owner)};
  log::info("master", "running as {} (uid {}); privileged delivery helper pid {}", owner, uid,
            (*helper)->pid());
  return helper;
}

void warn_unimplemented(const config::Config& cfg) {
  for (const auto& p : config::parameters())
    if (!p.implemented && cfg.is_set(std::string(p.name)))
      log::warning("master", "{}: this setting is accepted but has no effect yet in this version", p.name);
}

// dns_servers, and the trust anchor of DANE's validating lookups.
dns::UnboundOptions resolver_options(const config::Config& config) {
  dns::UnboundOptions options{config.get_list("dns_servers")};
  options.trust_anchor = config.get_path("dnssec_trust_anchor_file");
  return options;
}

}  // namespace

Status serve_session(std::shared_ptr<const config::Config> config, const std::vector<std::string>& args) {
  if (args.size() != 6 || (args[0] != "imap" && args[0] != "pop3"))
    return Error{"session-child: an internal command, started by the privileged helper"};
  log::init_from_spec(args[5]);
  passwd* pw = ::getpwnam(args[1].c_str());
  if (!pw || pw->pw_uid == 0) return Error{fmt::format("session-child: no such user \"{}\"", args[1])};
  auth::Account account;
  account.user = pw->pw_name;
  account.maildir = std::string(pw->pw_dir) + "/" + config->get("home_mailbox");
  while (account.maildir.size() > 1 && account.maildir.back() == '/') account.maildir.pop_back();
  if (auto st = delivery::drop_privileges(pw->pw_uid, pw->pw_gid); !st) return st;
  if (::chdir(pw->pw_dir) != 0) (void)::chdir("/");
  ::mallopt(M_ARENA_MAX, 2);
  asio::io_context io(1);
  auto rt = make_runtime(config, nullptr);
  if (!rt) return rt.error();
  Server server(io, *rt);
  server.start_user_session(3, args[0] == "imap" ? Service::kImap : Service::kPop3, std::move(account),
                            args[2] == "-" ? "" : args[2], args[3] == "1", args[4]);
  io.run();
  server.join();
  return Ok{};
}

Status serve(std::shared_ptr<const config::Config> config, const std::function<void()>& ready) {
  // glibc gives each worker thread its own malloc arena and keeps what was freed in it: with 16 workers a
  // few sessions on large mailboxes left ~150 MiB resident (measured with bench/pop3_vs_dovecot.py: 155 MiB
  // with the default, 24 MiB with 2 arenas, same speed).
  ::mallopt(M_ARENA_MAX, 2);
  // TLS handshakes and record encryption run on the I/O threads: one per CPU by default.
  int io_threads = static_cast<int>(config->get_int("io_threads"));
  if (io_threads <= 0) io_threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  asio::io_context io(1);
  warn_unimplemented(*config);
  // One resolver for the life of the server (dns_servers is read at start, not on reload).
  auto resolver = dns::UnboundResolver::create(io, resolver_options(*config));
  if (!resolver) return resolver.error();
  if (tls_used(*config)) {
    auto made = tls::ensure_self_signed(*config);
    if (!made) return made.error();
    if (!made->empty())
      log::warning("master", "no ssl_cert_file configured: using the self-signed certificate {}", *made);
  }
  auto rt = make_runtime(config, tls::read_directly);
  if (!rt) return rt.error();
  if (auto st = (*rt)->spool->create_directories(); !st) return st;
  Server server(io, *rt, io_threads - 1);
  server.set_resolver(**resolver);
  // Outbound delivery runs on threads and an io_context of its own with its own resolver: a stop abandons
  // what is under way (the files stay in active/ and are tried again at the next start, as after a crash)
  // instead of waiting for remote servers.
  auto remote = delivery::RemoteSettings::from_config(*config);
  if (!remote) return remote.error();
  // The queue manager's deliveries block on their queue files' fsyncs: a few threads let them overlap (and
  // share the directory fsyncs, base/files.hpp).
  constexpr int kOutboundThreads = 4;
  asio::io_context outbound_io(kOutboundThreads);
  auto outbound_resolver = dns::UnboundResolver::create(outbound_io, resolver_options(*config));
  if (!outbound_resolver) return outbound_resolver.error();
  queue::QueueManager queue_manager(outbound_io, *config, std::move(*remote), (*rt)->spool, (*rt)->delivery,
                                    **outbound_resolver);
  server.set_queue_manager(queue_manager);
  if (auto st = server.listen(); !st) return st;
  std::unique_ptr<delivery::PrivilegedHelper> helper;
  if (::geteuid() == 0) {
    auto h = separate_privileges(*config);
    if (!h) return h.error();
    helper = std::move(*h);
  }

  // The handlers run on this thread (`io`'s only one), so they may touch each other's signal sets.
  asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  asio::signal_set hup(io, SIGHUP);
  asio::signal_set flush(io, SIGUSR1);  // postern queue flush
  std::function<void()> wait_stop = [&] {
    stop_signals.async_wait([&](const asio::error_code& ec, int) {
      if (ec) return;
      server.stop();
      queue_manager.stop();
      outbound_io.stop();
      hup.cancel();
      flush.cancel();
    });
  };
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](const asio::error_code& ec, int) {
      if (ec || server.stopping()) return;
      server.reload();
      wait_hup();
    });
  };
  std::function<void()> wait_flush = [&] {
    flush.async_wait([&](const asio::error_code& ec, int) {
      if (ec) return;
      queue_manager.flush();
      wait_flush();
    });
  };
  wait_stop();
  wait_hup();
  wait_flush();
  server.start(helper.get());
  queue_manager.start();
  auto busy = asio::make_work_guard(outbound_io);
  std::vector<std::thread> outbound;
  for (int i = 0; i < kOutboundThreads; ++i) outbound.emplace_back([&outbound_io] { outbound_io.run(); });
  log::info("master", "daemon started -- configuration {}", config->dir());
  if (ready) ready();
  // Returns once the listeners are closed and every session on this thread has ended.
  io.run();
  server.join();
  outbound_io.stop();
  for (auto& t : outbound) t.join();
  log::info("master", "stopped");
  return Ok{};
}

}  // namespace postern::net

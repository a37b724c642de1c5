// queue/manager.cpp: the queue manager (see manager.hpp).
#include "queue/manager.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "mime/headers.hpp"
#include "queue/dsn.hpp"

namespace postern::queue {

using delivery::ConnectionCache;
using delivery::LocalDelivery;
using delivery::RemoteResult;
using delivery::RemoteSettings;

namespace {

using SysClock = std::chrono::system_clock;
namespace client = smtp::client;
constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);
// Messages delivered at once (Postfix's default_process_limit of smtp(8) processes).
constexpr size_t kMaxInFlight = 100;

std::chrono::seconds seconds_of(const config::Config& cfg, std::string_view name) {
  return std::chrono::seconds(cfg.get_int(name));
}

// RFC 8689 3: the sender's "TLS-Required: No" header field.
bool tls_required_no(std::string_view message) {
  auto value = mime::find_field(mime::parse_header(message), "tls-required");
  return value && iequals(trim(*value), "no");
}

bool has_8bit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

std::string domain_of(std::string_view address) {
  size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : to_lower(address.substr(at + 1));
}

// "550 5.1.1 text", or "550 text" when the server gave no enhanced code.
std::string reply_text(const client::Outcome& o) {
  return o.enhanced.empty() ? fmt::format("{} {}", o.code, o.text)
                            : fmt::format("{} {} {}", o.code, o.enhanced, o.text);
}

// Postfix's wording of a recipient's fate: "host mx[1.2.3.4] said: 550 5.1.1 ... (in reply to RCPT TO
// command)", or Postern's own reason.
std::string explain(const RemoteResult& r) {
  const auto& o = r.outcome;
  if (o.code == 0) return o.text;
  std::string host = r.relay.substr(0, r.relay.rfind(':'));
  std::string reply = reply_text(o);
  if (o.fate == client::Fate::kDelivered) return reply;
  return fmt::format("host {} said: {} (in reply to {} command)", host, reply, client::stage_name(o.stage));
}

std::string status_code(const client::Outcome& o) {
  if (!o.enhanced.empty()) return o.enhanced;
  if (o.fate == client::Fate::kDelivered) return "2.0.0";
  return o.fate == client::Fate::kBounced ? "5.0.0" : "4.0.0";
}

}  // namespace

QueueManager::QueueManager(asio::io_context& io, const config::Config& config, RemoteSettings remote,
                           std::shared_ptr<const queue::Spool> spool, std::shared_ptr<LocalDelivery> local,
                           dns::Resolver& resolver)
    : io_(io),
      strand_(asio::make_strand(io)),
      timer_(strand_),
      remote_(std::move(remote)),
      spool_(std::move(spool)),
      local_(std::move(local)),
      resolver_(resolver),
      myhostname_(config.get("myhostname")),
      run_delay_(seconds_of(config, "queue_run_delay")),
      min_backoff_(seconds_of(config, "minimal_backoff_time")),
      max_backoff_(seconds_of(config, "maximal_backoff_time")),
      lifetime_(seconds_of(config, "maximal_queue_lifetime")),
      bounce_lifetime_(seconds_of(config, "bounce_queue_lifetime")),
      delay_warning_(seconds_of(config, "delay_warning_time")),
      destination_limit_(
          static_cast<int>(std::max(1LL, config.get_int("default_destination_concurrency_limit")))),
      rate_delay_(seconds_of(config, "default_destination_rate_delay")),
      recipient_limit_(
          static_cast<size_t>(std::max(1LL, config.get_int("default_destination_recipient_limit")))),
      bounce_size_limit_(static_cast<uint64_t>(config.get_int("bounce_size_limit"))) {
  if (remote_.cache_time_limit.count() > 0)
    cache_ = std::make_unique<ConnectionCache>(io_.get_executor(), remote_);
}

void QueueManager::start() {
  // Never acknowledged: a transaction that a crash interrupted.
  if (auto ids = spool_->ids(QueueState::kIncoming))
    for (const auto& id : *ids) (void)spool_->remove(id, QueueState::kIncoming);
  if (auto ids = spool_->ids(QueueState::kActive)) {
    for (const auto& id : *ids) {
      auto moved = spool_->move(id, QueueState::kActive, QueueState::kDeferred);
      if (moved && *moved) {
        (void)spool_->touch(id, QueueState::kDeferred, SysClock::now());
        log::info("qmgr", "{}: back from active to deferred after a restart", id);
      }
    }
  }
  asio::co_spawn(strand_, run(), asio::detached);
}

void QueueManager::wake() {
  asio::post(strand_, [this] { timer_.cancel(); });
}

void QueueManager::flush() {
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, d] : destinations_) d.suspended_until = {};
  }
  wake();
}

void QueueManager::stop() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  wake();
}

asio::awaitable<void> QueueManager::run() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) co_return;
    }
    auto next = scan();
    auto wait = std::max(next - SysClock::now(), SysClock::duration(std::chrono::milliseconds(10)));
    timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait));
    co_await timer_.async_wait(kAsTuple);
  }
}

SysClock::time_point QueueManager::scan() {
  auto now = SysClock::now();
  auto next = now + run_delay_;
  std::string dir = spool_->directory(QueueState::kDeferred);
  struct Due {
    SysClock::time_point when;
    std::string id;
  };
  std::vector<Due> due;
  auto ids = spool_->ids(QueueState::kDeferred);
  if (!ids) log::error("qmgr", "{}", ids.error().message);
  for (auto& id : ids ? *ids : std::vector<std::string>()) {
    struct stat st;
    if (::stat((dir + "/" + id).c_str(), &st) != 0) continue;
    auto when = SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
    if (when > now) {
      next = std::min(next, when);
    } else {
      due.push_back({when, std::move(id)});
    }
  }
  std::sort(due.begin(), due.end(), [](const Due& a, const Due& b) { return a.when < b.when; });
  std::vector<std::string> starting;
  {
    std::lock_guard lock(mutex_);
    for (auto& d : due) {
      if (in_flight_.size() >= kMaxInFlight) {
        next = now;  // rescan as soon as a delivery ends (deliver() wakes the manager)
        break;
      }
      if (in_flight_.insert(d.id).second) starting.push_back(std::move(d.id));
    }
  }
  // Outside the lock: co_spawn may run the start of a delivery right here.
  for (auto& id : starting) {
    asio::co_spawn(asio::make_strand(io_), deliver(id), [id](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        log::error("qmgr", "{}: delivery failed: {}", id, x.what());
      }
    });
  }
  return next;
}

std::optional<std::string> QueueManager::acquire(const std::string& destination) {
  std::lock_guard lock(mutex_);
  auto& d = destinations_[destination];
  if (d.suspended_until > std::chrono::steady_clock::now())
    return "delivery temporarily suspended: " + d.suspended_why;
  auto now = std::chrono::steady_clock::now();
  bool paced = rate_delay_.count() > 0;
  if (d.active >= (paced ? 1 : destination_limit_) || now < d.next_start)
    return std::string();  // busy: wait for a slot
  ++d.active;
  if (paced) d.next_start = now + rate_delay_;
  return std::nullopt;
}

void QueueManager::release(const std::string& destination, bool unreachable, const std::string& why) {
  std::lock_guard lock(mutex_);
  auto& d = destinations_[destination];
  --d.active;
  if (unreachable) {
    d.suspended_until = std::chrono::steady_clock::now() + min_backoff_;
    d.suspended_why = why;
  } else {
    d.suspended_until = {};
  }
}

asio::awaitable<void> QueueManager::deliver(std::string id) {
  std::string active = spool_->path(QueueState::kActive, id);
  auto finish = [&] {
    bool rescan;
    {
      std::lock_guard lock(mutex_);
      rescan = in_flight_.size() >= kMaxInFlight;
      in_flight_.erase(id);
    }
    if (rescan) wake();
  };
  // Deleted or put on hold since the scan: nothing to do.
  auto taken = spool_->move(id, QueueState::kDeferred, QueueState::kActive, false);
  if (!taken || !*taken) {
    if (!taken) log::error("qmgr", "{}", taken.error().message);
    finish();
    co_return;
  }
  auto bytes = read_file(active);
  auto decoded = bytes ? queue::decode(*bytes) : Result<queue::Decoded>(bytes.error());
  if (!decoded) {
    spool_->quarantine(id, QueueState::kActive, decoded.error().message);
    finish();
    co_return;
  }
  queue::QueueFile q = decoded->envelope;
  std::string_view message = decoded->message;
  auto now = SysClock::now();
  auto age = now - q.arrival;
  bool expired = age > (q.sender.empty() ? bounce_lifetime_ : lifetime_);
  double delay = std::chrono::duration<double>(age).count();

  // Pending recipients by destination, in order of first appearance: their domain, or all of them together
  // when they go to the relayhost (one transaction, as Postfix); default_destination_recipient_limit each.
  std::vector<std::pair<std::string, std::vector<size_t>>> domains;
  for (size_t i = 0; i < q.recipients.size(); ++i) {
    if (q.recipients[i].state != RecipientState::kPending) continue;
    std::string domain = remote_.relayhost ? remote_.relayhost->host : domain_of(q.recipients[i].address);
    auto it =
        std::find_if(domains.rbegin(), domains.rend(), [&](const auto& d) { return d.first == domain; });
    if (it == domains.rend() || it->second.size() >= recipient_limit_) {
      domains.push_back({domain, {i}});
    } else {
      it->second.push_back(i);
    }
  }

  // Delay warnings (delay_warning_time): once per message, about the recipients still deferred.
  bool warn_delay = delay_warning_.count() > 0 && !q.delay_warned && age >= delay_warning_ && !expired;
  std::vector<queue::DsnRecipient> failed, delayed;
  auto settle = [&](size_t i, const RemoteResult& r) {
    auto& rcpt = q.recipients[i];
    const auto& o = r.outcome;
    std::string why = explain(r);
    std::string_view status = "deferred";
    queue::DsnRecipient d;
    d.final_recipient = rcpt.address;
    d.original = rcpt.dsn.orcpt;
    d.status = status_code(o);
    if (o.code != 0) {
      d.remote_mta = r.relay.substr(0, r.relay.find('['));
      d.diagnostic = "smtp; " + reply_text(o);
    }
    d.explanation = why;
    d.last_attempt = now;
    if (o.fate == client::Fate::kDelivered) {
      rcpt.state = RecipientState::kDelivered;
      rcpt.reason.clear();
      status = "sent";
    } else if (o.fate == client::Fate::kBounced || expired) {
      rcpt.state = RecipientState::kFailed;
      status = o.fate == client::Fate::kBounced ? "bounced" : "expired";
      d.action = queue::DsnAction::kFailed;
      if (queue::wants_dsn(q.sender, rcpt.dsn.notify, d.action, false)) failed.push_back(std::move(d));
    } else {
      rcpt.reason = why;
      d.action = queue::DsnAction::kDelayed;
      d.will_retry_until = q.arrival + (q.sender.empty() ? bounce_lifetime_ : lifetime_);
      if (warn_delay && queue::wants_dsn(q.sender, rcpt.dsn.notify, d.action, true))
        delayed.push_back(std::move(d));
    }
    log::info("smtp", "{}: to=<{}>, relay={}, delay={:.2f}, dsn={}, status={} ({}{})", id, rcpt.address,
              r.relay, delay, status_code(o), status, why,
              status == "expired" ? ": message expired, returned to sender" : "");
  };

  for (auto& [domain, indexes] : domains) {
    const std::string& destination = domain;
    std::optional<std::string> refused;
    for (;;) {
      refused = acquire(destination);
      if (!refused || !refused->empty()) break;
      asio::steady_timer wait(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
      co_await wait.async_wait(kAsTuple);
    }
    if (refused) {
      client::Outcome o;
      o.fate = client::Fate::kDeferred;
      o.enhanced = "4.4.1";
      o.text = *refused;
      for (size_t i : indexes) settle(i, {o, "none"});
      continue;
    }
    client::Message m;
    m.sender = q.sender;
    m.envid = q.envid;
    m.requiretls = q.requiretls;
    m.tls_optional = tls_required_no(message);
    m.ret = std::string(smtp::proto::ret_text(q.ret));
    m.content = message;
    m.eight_bit = has_8bit(message);
    m.smtputf8 = has_8bit(q.sender);
    for (size_t i : indexes) {
      const auto& r = q.recipients[i];
      m.smtputf8 = m.smtputf8 || has_8bit(r.address);
      client::Recipient cr{r.address, r.dsn.notify ? smtp::proto::notify_text(r.dsn.notify) : "", ""};
      if (r.dsn.orcpt) cr.orcpt = r.dsn.orcpt->type + ";" + r.dsn.orcpt->address;
      m.recipients.push_back(std::move(cr));
    }
    auto results = co_await deliver_remote(remote_, resolver_, domain, std::move(m), cache_.get());
    bool unreachable = std::all_of(results.begin(), results.end(), [](const RemoteResult& r) {
      return r.outcome.fate == client::Fate::kDeferred && r.outcome.stage == client::Stage::kConnect &&
             r.outcome.code == 0;
    });
    release(destination, unreachable, results.empty() ? "" : results.front().outcome.text);
    for (size_t k = 0; k < indexes.size() && k < results.size(); ++k) settle(indexes[k], results[k]);
  }

  for (auto* report : {&failed, &delayed}) {
    if (report->empty()) continue;
    queue::DsnInput in;
    in.reporting_mta = myhostname_;
    in.queue_id = id;
    in.arrival = q.arrival;
    in.sender = q.sender;
    in.envid = q.envid;
    in.ret = q.ret;
    in.recipients = std::move(*report);
    in.now = now;
    in.size_limit = bounce_size_limit_;
    send_dsn(*local_, *spool_, id, q.sender, queue::compose_dsn(in, message));
  }
  if (warn_delay) q.delay_warned = true;

  bool pending = std::any_of(q.recipients.begin(), q.recipients.end(),
                             [](const auto& r) { return r.state == RecipientState::kPending; });
  if (::access(active.c_str(), F_OK) != 0) {
    // `postern queue delete` or `hold` took it meanwhile: theirs now (what was delivered is logged above).
    log::info("qmgr", "{}: taken out of the active queue during delivery", id);
  } else if (!pending) {
    if (auto removed = spool_->remove(id, QueueState::kActive); !removed)
      log::error("qmgr", "{}", removed.error().message);
    log::info("qmgr", "{}: removed", id);
  } else {
    // The new state, durably, inside active/; then back to deferred/ with the next attempt time.
    auto backoff =
        std::clamp(std::chrono::duration_cast<std::chrono::seconds>(age), min_backoff_, max_backoff_);
    // write, fsync, rename over the old state: a crash leaves one or the other, whole.
    if (auto written = write_file_atomically(active, queue::encode(q, message), 0600); !written)
      log::error("qmgr", "{}: cannot record the delivery state: {}", id, written.error().message);
    (void)spool_->touch(id, QueueState::kActive, now + backoff);
    if (auto moved = spool_->move(id, QueueState::kActive, QueueState::kDeferred, false); !moved)
      log::error("qmgr", "{}", moved.error().message);
  }
  finish();
}

}  // namespace postern::queue

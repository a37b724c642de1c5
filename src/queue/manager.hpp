// queue/manager.hpp: the queue manager (Postfix's qmgr(8)): delivers what the outbound queue holds.
// A message in deferred/ is due when its file's mtime has passed (the next attempt time, as in Postfix). The
// manager scans deferred/ every queue_run_delay, at once when the server queued new mail (wake()) or when
// asked to flush (SIGUSR1, `postern queue flush`), moves a due message to active/, delivers its pending
// recipients per destination domain (delivery/remote), records each recipient's fate in the queue file
// (D delivered, F failed, W the reason of a deferral) and then removes the file, or writes it back to
// deferred/ with the next attempt time: the time since arrival, between minimal_backoff_time and
// maximal_backoff_time, so the wait doubles. A recipient refused with 5xx, or still pending after
// maximal_queue_lifetime (bounce_queue_lifetime for bounces), is returned to the sender in a DSN
// (queue/dsn) unless its NOTIFY says otherwise or the sender is null; after delay_warning_time (when set) the
// sender is told once that the message is delayed. A destination whose hosts could not be
// reached is left alone for minimal_backoff_time: its other messages are deferred without a try, as
// Postfix's "delivery temporarily suspended". At most default_destination_concurrency_limit deliveries go
// to one destination at a time (one, default_destination_rate_delay apart, when that is set), with at most
// default_destination_recipient_limit recipients each; a connection whose session is over waits
// smtp_connection_cache_time_limit for the next message to its destination (ConnectionCache).
// Crash safety: a message is in exactly one state directory; its file is rewritten by write-fsync-rename
// inside active/ before it moves back, so a kill -9 at any moment leaves the last recorded state (files left
// in active/ go back to deferred/ at start). A recipient is delivered twice only if the crash falls between
// the remote 250 and the rewrite. A file that does not decode goes to corrupt/ and is logged.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

// After a standard header: see dns/resolver.hpp (Asio's allocator config).
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include "config/config.hpp"
#include "delivery/local.hpp"
#include "delivery/remote.hpp"
#include "dns/resolver.hpp"
#include "queue/spool.hpp"

namespace postern::queue {

class QueueManager {
 public:
  QueueManager(asio::io_context& io, const config::Config& config, delivery::RemoteSettings remote,
               std::shared_ptr<const queue::Spool> spool, std::shared_ptr<delivery::LocalDelivery> local,
               dns::Resolver& resolver);

  // Moves what a crash left in active/ back to deferred/, clears incoming/ (never acknowledged) and starts
  // scanning.
  void start();
  // Scan deferred/ now (new mail was queued). Thread-safe.
  void wake();
  // `postern queue flush` (SIGUSR1): destinations suspended after a failure are tried again too, and
  // deferred/ is scanned now. Thread-safe.
  void flush();
  // Stops scanning; deliveries under way end on their own.
  void stop();

 private:
  struct Destination {
    int active = 0;
    std::chrono::steady_clock::time_point next_start{};  // default_destination_rate_delay
    std::chrono::steady_clock::time_point suspended_until{};
    std::string suspended_why;
  };

  asio::awaitable<void> run();
  // Starts the due messages of deferred/; the time of the next one due (or the next periodic scan).
  std::chrono::system_clock::time_point scan();
  asio::awaitable<void> deliver(std::string queue_id);
  // The reason a destination is suspended, or nothing; takes a delivery slot when it is not.
  std::optional<std::string> acquire(const std::string& destination);
  void release(const std::string& destination, bool unreachable, const std::string& why);

  asio::io_context& io_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;
  delivery::RemoteSettings remote_;
  std::shared_ptr<const queue::Spool> spool_;
  std::shared_ptr<delivery::LocalDelivery> local_;
  dns::Resolver& resolver_;
  std::string myhostname_;
  std::chrono::seconds run_delay_, min_backoff_, max_backoff_, lifetime_, bounce_lifetime_, delay_warning_;
  int destination_limit_;
  std::chrono::seconds rate_delay_;
  size_t recipient_limit_;
  uint64_t bounce_size_limit_;
  std::unique_ptr<delivery::ConnectionCache> cache_;  // null when smtp_connection_cache_time_limit is 0

  std::mutex mutex_;  // guards what follows
  bool stopped_ = false;
  std::set<std::string> in_flight_;
  std::map<std::string, Destination> destinations_;
};

}  // namespace postern::queue

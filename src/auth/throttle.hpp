// auth/throttle.hpp: failed-login throttling, a fail2ban inside: each failed login from a client address (or
// for a user name) makes the next failure wait longer before its answer (auth_failure_delay, doubling, at
// most 15 s); after auth_failure_block_count failures within auth_failure_block_time the address is blocked
// for that long. User names only get the growing delay, never a block: an attacker must not be able to lock
// the owner out. A successful login clears its address and user. Other addresses are never slowed.
// Thread-safe; no I/O: the caller waits (on a timer, never on a worker thread) and refuses blocked clients.
// Security: the keys are untrusted (client addresses, typed user names); memory is bounded by pruning
// records older than the window, and at most kMaxRecords of each kind are kept.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace postern::auth {

class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  struct Policy {
    std::chrono::milliseconds base_delay{2000};
    int block_after = 10;              // failures from one address; 0: never block
    std::chrono::seconds window{600};  // failures older than this are forgotten; also the block's length
  };
  static constexpr std::chrono::milliseconds kMaxDelay{15000};
  static constexpr size_t kMaxRecords = 100000;

  void set_policy(const Policy& p);
  // How long `ip` stays blocked (zero: it is not).
  std::chrono::seconds blocked(const std::string& ip, Clock::time_point now = Clock::now());
  // Records a failed login; returns how long to wait before answering it.
  std::chrono::milliseconds failed(const std::string& ip, const std::string& user,
                                   Clock::time_point now = Clock::now());
  void succeeded(const std::string& ip, const std::string& user);

 private:
  struct Record {
    int failures = 0;
    Clock::time_point last;
    Clock::time_point blocked_until;
  };
  std::chrono::milliseconds count(Record& r, Clock::time_point now) const;
  void prune(std::unordered_map<std::string, Record>& records, Clock::time_point now);

  std::mutex mutex_;
  Policy policy_;
  std::unordered_map<std::string, Record> by_ip_, by_user_;
};

}  // namespace postern::auth

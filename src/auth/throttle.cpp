#include "auth/throttle.hpp"

#include <algorithm>

#include "base/log.hpp"
#include "base/strings.hpp"

namespace postern::auth {

void LoginThrottle::set_policy(const Policy& p) {
  std::lock_guard lock(mutex_);
  policy_ = p;
}

std::chrono::seconds LoginThrottle::blocked(const std::string& ip, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = by_ip_.find(ip);
  if (it == by_ip_.end() || it->second.blocked_until <= now) return std::chrono::seconds(0);
  return std::chrono::ceil<std::chrono::seconds>(it->second.blocked_until - now);
}

std::chrono::milliseconds LoginThrottle::count(Record& r, Clock::time_point now) const {
  if (now - r.last > policy_.window) r.failures = 0;
  r.failures++;
  r.last = now;
  if (policy_.base_delay.count() <= 0) return std::chrono::milliseconds(0);
  int doublings = std::min(r.failures - 1, 16);
  std::chrono::milliseconds delay = policy_.base_delay * (1L << doublings);
  return std::min(delay, std::max(kMaxDelay, policy_.base_delay));
}

void LoginThrottle::prune(std::unordered_map<std::string, Record>& records, Clock::time_point now) {
  if (records.size() < kMaxRecords) return;
  std::erase_if(records, [&](const auto& r) {
    return now - r.second.last > policy_.window && r.second.blocked_until <= now;
  });
  if (records.size() >= kMaxRecords) records.clear();  // a flood of fresh names: start over, stay bounded
}

std::chrono::milliseconds LoginThrottle::failed(const std::string& ip, const std::string& user,
                                                Clock::time_point now) {
  std::lock_guard lock(mutex_);
  prune(by_ip_, now);
  prune(by_user_, now);
  Record& r = by_ip_[ip];
  auto delay = count(r, now);
  if (!user.empty()) delay = std::max(delay, count(by_user_[to_lower(user)], now));
  if (policy_.block_after > 0 && r.failures >= policy_.block_after && r.blocked_until <= now) {
    r.blocked_until = now + policy_.window;
    log::warning("auth", "blocking {} for {}s after {} failed logins", ip, policy_.window.count(),
                 r.failures);
  }
  return delay;
}

void LoginThrottle::succeeded(const std::string& ip, const std::string& user) {
  std::lock_guard lock(mutex_);
  auto it = by_ip_.find(ip);
  if (it != by_ip_.end() && it->second.blocked_until <= Clock::now()) by_ip_.erase(it);
  by_user_.erase(to_lower(user));
}

}  // namespace postern::auth

#include "base/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

namespace postern {

void parallel_for(size_t n, size_t per_thread, size_t max_threads, const std::function<void(size_t)>& fn) {
  size_t threads =
      std::clamp<size_t>(n / std::max<size_t>(per_thread, 1), 1, std::max<size_t>(max_threads, 1));
  if (threads == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i);
  };
  std::vector<std::thread> helpers;
  try {
    while (helpers.size() + 1 < threads) helpers.emplace_back(run);
  } catch (const std::system_error&) {  // out of threads: fewer helpers, the caller takes the rest
  }
  run();
  for (auto& t : helpers) t.join();
}

size_t cpu_threads() {
  return std::max(1U, std::thread::hardware_concurrency());
}

}  // namespace postern

#include "base/parallel.hpp"

#include <algorithm>
#include <system_error>

namespace postern {

ParallelJob::ParallelJob(size_t n, size_t helpers, std::function<void(size_t)> fn)
    : fn_(std::move(fn)), n_(n) {
  try {
    while (threads_.size() < std::min(helpers, n)) threads_.emplace_back([this] { run(); });
  } catch (const std::system_error&) {  // out of threads: fewer helpers, the caller takes the rest
  }
}

void ParallelJob::run() {
  for (size_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) fn_(i);
}

void ParallelJob::finish() {
  run();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void parallel_for(size_t n, size_t per_thread, size_t max_threads, const std::function<void(size_t)>& fn) {
  size_t threads =
      std::clamp<size_t>(n / std::max<size_t>(per_thread, 1), 1, std::max<size_t>(max_threads, 1));
  ParallelJob(n, threads - 1, fn).finish();
}

size_t cpu_threads() {
  return std::max(1U, std::thread::hardware_concurrency());
}

}  // namespace postern

// base/parallel.hpp: runs many independent calls on a few threads, for work that waits on the disk or uses
// a whole core per call (unlinks, reading and parsing many message files).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace postern {

// Calls fn(i) for every i in [0, n), each exactly once, on up to `helpers` threads started at once, while the
// caller goes on with other work; finish() (or the destructor) makes the caller take the calls no thread has
// claimed yet and returns when every call has. Threads take the next unclaimed index, so uneven calls
// balance. fn must be safe to call concurrently and must not throw. When no thread can be started, finish()
// makes every call. A pipeline: the next batch is computed while the caller uses the last one.
class ParallelJob {
 public:
  ParallelJob(size_t n, size_t helpers, std::function<void(size_t)> fn);
  ~ParallelJob() { finish(); }
  ParallelJob(const ParallelJob&) = delete;
  ParallelJob& operator=(const ParallelJob&) = delete;
  void finish();

 private:
  void run();

  std::function<void(size_t)> fn_;
  size_t n_;
  std::atomic<size_t> next_{0};
  std::vector<std::thread> threads_;
};

// Calls fn(i) for every i in [0, n), each exactly once, on the calling thread and up to max_threads - 1
// threads started for the purpose, one thread for every `per_thread` calls (so small n runs inline); returns
// when every call has (a ParallelJob finished at once).
void parallel_for(size_t n, size_t per_thread, size_t max_threads, const std::function<void(size_t)>& fn);

// Threads for CPU-bound work: the machine's cores (at least 1).
size_t cpu_threads();

}  // namespace postern

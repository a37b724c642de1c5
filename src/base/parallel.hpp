// base/parallel.hpp: runs many independent calls on a few threads, for work that waits on the disk or uses
// a whole core per call (unlinks, reading and parsing many message files).
#pragma once

#include <cstddef>
#include <functional>

namespace postern {

// Calls fn(i) for every i in [0, n), each exactly once, on the calling thread and up to max_threads - 1
// threads started for the purpose, one thread for every `per_thread` calls (so small n runs inline); returns
// when every call has. Threads take the next unclaimed index, so uneven calls balance. fn must be safe to
// call concurrently and must not throw. When no thread can be started the caller does every call.
void parallel_for(size_t n, size_t per_thread, size_t max_threads, const std::function<void(size_t)>& fn);

// Threads for CPU-bound work: the machine's cores (at least 1).
size_t cpu_threads();

}  // namespace postern

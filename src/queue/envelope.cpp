#include "queue/envelope.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>

#include <fmt/format.h>

namespace postern::queue {

std::string new_queue_id() {
  // Seconds, microseconds and a counter that starts at a per-process offset: 14 hex digits, like Postfix's
  // ids in length, distinct for the messages one host handles.
  static std::atomic<uint32_t> counter{static_cast<uint32_t>(::getpid()) * 2654435761u};
  timeval tv;
  ::gettimeofday(&tv, nullptr);
  uint32_t n = counter.fetch_add(1) & 0xFFF;
  return fmt::format("{:06X}{:05X}{:03X}", static_cast<uint32_t>(tv.tv_sec) & 0xFFFFFF,
                     static_cast<uint32_t>(tv.tv_usec), n);
}

}  // namespace postern::queue

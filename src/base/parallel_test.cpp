#include "base/parallel.hpp"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace postern {
namespace {

TEST(ParallelFor, CallsEveryIndexOnceWithinTheThreadLimit) {
  constexpr size_t kN = 10000;
  std::vector<std::atomic<int>> calls(kN);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  parallel_for(kN, 100, 4, [&](size_t i) {
    calls[i].fetch_add(1);
    std::lock_guard lock(mutex);
    threads.insert(std::this_thread::get_id());
  });
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(calls[i].load(), 1) << i;
  EXPECT_LE(threads.size(), 4u);
  EXPECT_TRUE(threads.count(std::this_thread::get_id()));  // the caller works too
}

TEST(ParallelFor, FewCallsRunOnTheCallingThreadInOrder) {
  std::vector<size_t> order;
  auto caller = std::this_thread::get_id();
  bool elsewhere = false;
  parallel_for(50, 64, 8, [&](size_t i) {
    elsewhere = elsewhere || std::this_thread::get_id() != caller;
    order.push_back(i);
  });
  EXPECT_FALSE(elsewhere);
  ASSERT_EQ(order.size(), 50u);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
}

TEST(ParallelFor, NothingToDo) {
  bool called = false;
  parallel_for(0, 1, 8, [&](size_t) { called = true; });
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace postern

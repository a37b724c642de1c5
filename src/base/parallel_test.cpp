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
  // (Whether the caller made any call is up to the scheduler: the helpers may take them all first. That the
  // caller takes what they have not is ParallelJob.RunsWhileTheCallerWorksAndFinishTakesTheRest.)
  EXPECT_LE(threads.size(), 4u);
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

TEST(ParallelJob, RunsWhileTheCallerWorksAndFinishTakesTheRest) {
  constexpr size_t kN = 2000;
  std::vector<std::atomic<int>> calls(kN);
  std::atomic<bool> release{false};
  std::atomic<size_t> started{0};
  auto caller = std::this_thread::get_id();
  std::atomic<size_t> by_caller{0};
  ParallelJob job(kN, 1, [&](size_t i) {
    if (std::this_thread::get_id() == caller) {
      by_caller.fetch_add(1);
    } else if (started.fetch_add(1) == 0) {
      while (!release.load()) std::this_thread::yield();  // the helper's first call waits for the caller
    }
    calls[i].fetch_add(1);
  });
  // The helper is inside its first call, and nothing else was taken: the caller is free meanwhile.
  while (started.load() == 0) std::this_thread::yield();
  EXPECT_EQ(started.load(), 1u);
  EXPECT_EQ(by_caller.load(), 0u);
  release = true;
  job.finish();
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(calls[i].load(), 1) << i;
  EXPECT_EQ(started.load() + by_caller.load(), kN);
  job.finish();  // again: nothing left, nothing called twice
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(calls[i].load(), 1) << i;
}

TEST(ParallelJob, WithoutHelpersFinishDoesEverything) {
  std::vector<size_t> order;
  {
    ParallelJob job(5, 0, [&](size_t i) { order.push_back(i); });
    EXPECT_TRUE(order.empty());
  }  // the destructor finishes it
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4}));
}

}  // namespace
}  // namespace postern

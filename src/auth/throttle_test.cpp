#include "auth/throttle.hpp"

#include <gtest/gtest.h>

namespace postern::auth {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

void configure(LoginThrottle& t, milliseconds base, int block_after, seconds window) {
  t.set_policy({base, block_after, window});
}

TEST(LoginThrottle, DelayDoublesPerFailureUpToTheCap) {
  LoginThrottle t;
  configure(t, milliseconds(2000), 0, seconds(600));
  auto now = LoginThrottle::Clock::now();
  EXPECT_EQ(t.failed("192.0.2.1", "alice", now), milliseconds(2000));
  EXPECT_EQ(t.failed("192.0.2.1", "alice", now), milliseconds(4000));
  EXPECT_EQ(t.failed("192.0.2.1", "alice", now), milliseconds(8000));
  EXPECT_EQ(t.failed("192.0.2.1", "alice", now), LoginThrottle::kMaxDelay);
  EXPECT_EQ(t.failed("192.0.2.1", "alice", now), LoginThrottle::kMaxDelay);
  EXPECT_EQ(t.blocked("192.0.2.1", now), seconds(0)) << "block_after 0: never blocked";
}

TEST(LoginThrottle, OtherAddressesAreNotSlowed) {
  LoginThrottle t;
  configure(t, milliseconds(1000), 3, seconds(60));
  auto now = LoginThrottle::Clock::now();
  for (int i = 0; i < 3; ++i) t.failed("192.0.2.1", "", now);
  EXPECT_EQ(t.blocked("192.0.2.1", now), seconds(60));
  EXPECT_EQ(t.blocked("192.0.2.2", now), seconds(0));
  EXPECT_EQ(t.failed("192.0.2.2", "", now), milliseconds(1000));
}

TEST(LoginThrottle, UserNamesAreSlowedAcrossAddressesButNeverBlocked) {
  LoginThrottle t;
  configure(t, milliseconds(1000), 2, seconds(60));
  auto now = LoginThrottle::Clock::now();
  EXPECT_EQ(t.failed("192.0.2.1", "Alice", now), milliseconds(1000));
  EXPECT_EQ(t.failed("192.0.2.2", "alice", now), milliseconds(2000)) << "the second failure for alice";
  EXPECT_EQ(t.failed("192.0.2.3", "ALICE", now), milliseconds(4000));
  EXPECT_EQ(t.blocked("192.0.2.3", now), seconds(0)) << "one failure from this address";
}

TEST(LoginThrottle, BlockEndsAndOldFailuresAreForgotten) {
  LoginThrottle t;
  configure(t, milliseconds(1000), 2, seconds(60));
  auto now = LoginThrottle::Clock::now();
  t.failed("192.0.2.1", "", now);
  t.failed("192.0.2.1", "", now);
  EXPECT_EQ(t.blocked("192.0.2.1", now + seconds(59)), seconds(1));
  EXPECT_EQ(t.blocked("192.0.2.1", now + seconds(60)), seconds(0));
  EXPECT_EQ(t.failed("192.0.2.1", "", now + seconds(120)), milliseconds(1000)) << "the count starts over";
}

TEST(LoginThrottle, SuccessClearsAddressAndUserButNotABlock) {
  LoginThrottle t;
  configure(t, milliseconds(1000), 3, seconds(60));
  auto now = LoginThrottle::Clock::now();
  t.failed("192.0.2.1", "alice", now);
  t.failed("192.0.2.1", "alice", now);
  t.succeeded("192.0.2.1", "alice");
  EXPECT_EQ(t.failed("192.0.2.1", "alice", now), milliseconds(1000));
  t.failed("192.0.2.9", "", now);
  t.failed("192.0.2.9", "", now);
  t.failed("192.0.2.9", "", now);
  t.succeeded("192.0.2.9", "bob");
  EXPECT_GT(t.blocked("192.0.2.9", LoginThrottle::Clock::now()), seconds(0));
}

TEST(LoginThrottle, ZeroDelayDisablesWaiting) {
  LoginThrottle t;
  configure(t, milliseconds(0), 0, seconds(60));
  EXPECT_EQ(t.failed("192.0.2.1", "alice"), milliseconds(0));
  EXPECT_EQ(t.failed("192.0.2.1", "alice"), milliseconds(0));
}

}  // namespace
}  // namespace postern::auth

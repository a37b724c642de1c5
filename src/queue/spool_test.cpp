#include "queue/spool.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "base/files.hpp"

namespace postern::queue {
namespace {

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/postern-spool-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(spool().create_directories().ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  Spool spool() const { return Spool(dir_); }

  static QueueFile message(std::string id, long long seconds) {
    QueueFile q;
    q.queue_id = std::move(id);
    q.arrival = std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
    q.sender = "alice@example.test";
    q.recipients = {{"bob@other.example", RecipientState::kPending, "", {}}};
    return q;
  }

  std::string dir_;
};

TEST_F(SpoolTest, DirectoriesAsPostfix) {
  for (const char* d : {"incoming", "active", "deferred", "hold", "corrupt"}) {
    struct stat st;
    ASSERT_EQ(::stat((dir_ + "/" + d).c_str(), &st), 0) << d;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
  EXPECT_TRUE(spool().create_directories().ok());  // again: nothing to do
}

TEST_F(SpoolTest, IncomingThenDeferred) {
  store::StoreError err;
  QueueFile q = message("AAA", 200);
  ASSERT_TRUE(spool().write_incoming(q, {"Subject: s\n", "\nbody\n"}, err)) << err.detail;
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/incoming/AAA"));
  std::vector<std::string> problems;
  EXPECT_TRUE(spool().list(problems).empty());  // not queued yet
  ASSERT_TRUE(spool().commit("AAA", err)) << err.detail;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/incoming/AAA"));
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/deferred/AAA").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto bytes = read_file(dir_ + "/deferred/AAA");
  ASSERT_TRUE(bytes.ok());
  auto d = decode(*bytes);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->message, "Subject: s\n\nbody\n");
  EXPECT_EQ(d->envelope.recipients, q.recipients);
}

TEST_F(SpoolTest, AbortLeavesNothing) {
  store::StoreError err;
  ASSERT_TRUE(spool().write_incoming(message("BBB", 1), {"x\n"}, err));
  spool().abort("BBB");
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/incoming"));
  EXPECT_FALSE(spool().commit("BBB", err));  // nothing left to commit
  EXPECT_EQ(err.kind, store::ErrorKind::kTemporary);
}

TEST_F(SpoolTest, ListsOldestFirstAndReportsDamage) {
  store::StoreError err;
  for (auto [id, t] : {std::pair{"NEW", 300}, {"OLD", 100}}) {
    ASSERT_TRUE(spool().write_incoming(message(id, t), {std::string(200000, 'x')}, err));  // > one read
    ASSERT_TRUE(spool().commit(id, err));
  }
  ASSERT_EQ(std::rename((dir_ + "/deferred/NEW").c_str(), (dir_ + "/hold/NEW").c_str()), 0);
  std::ofstream(dir_ + "/deferred/BAD") << "POSTERN-QUEUE 1\nI3:BAD\n";
  std::vector<std::string> problems;
  auto listed = spool().list(problems);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].envelope.queue_id, "OLD");
  EXPECT_EQ(listed[0].state, QueueState::kDeferred);
  EXPECT_EQ(listed[1].envelope.queue_id, "NEW");
  EXPECT_EQ(listed[1].state, QueueState::kHold);
  EXPECT_EQ(listed[1].envelope.size, 200000u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("deferred/BAD"), std::string::npos);
}

TEST_F(SpoolTest, FailedWriteIsAnError) {
  store::StoreError err;
  ASSERT_TRUE(spool().write_incoming(message("CCC", 1), {"x\n"}, err));
  EXPECT_FALSE(spool().write_incoming(message("CCC", 1), {"x\n"}, err));  // O_EXCL: never overwrites
  EXPECT_NE(err.detail.find("incoming/CCC"), std::string::npos);
}

}  // namespace
}  // namespace postern::queue

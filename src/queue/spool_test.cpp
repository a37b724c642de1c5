#include "queue/spool.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "base/files.hpp"
#include "queue/envelope.hpp"

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

  // Queues `id` into deferred/.
  void queued(const std::string& id) {
    store::StoreError err;
    ASSERT_TRUE(spool().write_incoming(message(id, 1), {"x\n"}, err)) << err.detail;
    ASSERT_TRUE(spool().commit(id, err)) << err.detail;
  }
  time_t mtime(const std::string& rel) const {
    struct stat st;
    return ::stat((dir_ + "/" + rel).c_str(), &st) == 0 ? st.st_mtime : -1;
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
  for (auto [id, t] : {std::pair{"0EE", 300}, {"01D", 100}}) {
    ASSERT_TRUE(spool().write_incoming(message(id, t), {std::string(200000, 'x')}, err));  // > one read
    ASSERT_TRUE(spool().commit(id, err));
  }
  ASSERT_EQ(std::rename((dir_ + "/deferred/0EE").c_str(), (dir_ + "/hold/0EE").c_str()), 0);
  std::ofstream(dir_ + "/deferred/BAD") << "POSTERN-QUEUE 1\nI3:BAD\n";
  std::vector<std::string> problems;
  auto listed = spool().list(problems);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].envelope.queue_id, "01D");
  EXPECT_EQ(listed[0].state, QueueState::kDeferred);
  EXPECT_EQ(listed[1].envelope.queue_id, "0EE");
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

TEST_F(SpoolTest, QueueIdsAreHexOnly) {
  EXPECT_TRUE(valid_queue_id("0123456789ABCDEF"));
  EXPECT_TRUE(valid_queue_id(new_queue_id()));
  EXPECT_TRUE(valid_queue_id(std::string(32, 'A')));
  for (std::string_view bad : {"", "abc", "../deferred/AB", "AB/CD", ".", "..", "ABG", "AB CD", "AB\n"})
    EXPECT_FALSE(valid_queue_id(bad)) << bad;
  EXPECT_FALSE(valid_queue_id(std::string(33, 'A')));
}

TEST_F(SpoolTest, MoveBetweenStatesKeepsModeAndTime) {
  queued("A1");
  auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  ASSERT_TRUE(*spool().touch("A1", QueueState::kDeferred, when));
  auto moved = spool().move("A1", QueueState::kDeferred, QueueState::kHold);
  ASSERT_TRUE(moved.ok() && *moved);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/deferred/A1"));
  EXPECT_EQ(mtime("hold/A1"), 1700000000);
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/hold/A1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::vector<std::string> problems;
  auto listed = spool().list(problems);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].state, QueueState::kHold);
  // Gone already: false, not an error; the file in hold/ is untouched.
  moved = spool().move("A1", QueueState::kDeferred, QueueState::kActive);
  ASSERT_TRUE(moved.ok());
  EXPECT_FALSE(*moved);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/hold/A1"));
  auto ids = spool().ids(QueueState::kHold);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, std::vector<std::string>{"A1"});
  std::ofstream(dir_ + "/hold/A1.tmp") << "being rewritten";  // not a message
  EXPECT_EQ(*spool().ids(QueueState::kHold), std::vector<std::string>{"A1"});
  EXPECT_EQ(spool().list(problems).size(), 1u);
  EXPECT_TRUE(problems.empty());
  EXPECT_TRUE(spool().ids(QueueState::kDeferred)->empty());
}

TEST_F(SpoolTest, MoveIntoAMissingDirectoryIsAnError) {
  queued("A2");
  std::filesystem::remove(dir_ + "/active");
  auto moved = spool().move("A2", QueueState::kDeferred, QueueState::kActive);
  ASSERT_FALSE(moved.ok());
  EXPECT_NE(moved.error().message.find("deferred/A2"), std::string::npos) << moved.error().message;
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/deferred/A2"));
  EXPECT_TRUE(spool().ids(QueueState::kActive)->empty());  // no directory: no ids
}

TEST_F(SpoolTest, RemoveAndTouch) {
  queued("A3");
  auto now = std::chrono::system_clock::now();
  ASSERT_TRUE(*spool().touch("A3", QueueState::kDeferred, now + std::chrono::hours(1)));
  EXPECT_NEAR(static_cast<double>(mtime("deferred/A3")),
              static_cast<double>(std::chrono::system_clock::to_time_t(now) + 3600), 1.0);
  EXPECT_FALSE(*spool().touch("A3", QueueState::kHold, now));
  EXPECT_FALSE(*spool().remove("A3", QueueState::kHold));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/deferred/A3"));
  EXPECT_TRUE(*spool().remove("A3", QueueState::kDeferred));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/deferred/A3"));
  EXPECT_FALSE(*spool().remove("A3", QueueState::kDeferred));
}

TEST_F(SpoolTest, QuarantineMovesADamagedFileToCorruptAndLogsIt) {
  std::ofstream(dir_ + "/deferred/0BAD") << "POSTERN-QUEUE 1\nI4:0BAD\n";
  std::vector<std::string> problems;
  EXPECT_TRUE(spool().list(problems).empty());
  ASSERT_EQ(problems.size(), 1u);
  ::testing::internal::CaptureStderr();
  spool().quarantine("0BAD", QueueState::kDeferred, problems[0]);
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("0BAD: corrupt queue file moved from deferred/ to corrupt/: "), std::string::npos)
      << log;
  EXPECT_NE(log.find(problems[0]), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/deferred/0BAD"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/corrupt/0BAD"));
  problems.clear();
  EXPECT_TRUE(spool().list(problems).empty());
  EXPECT_TRUE(problems.empty());  // corrupt/ is not listed
  // Gone meanwhile: nothing to do, nothing logged.
  ::testing::internal::CaptureStderr();
  spool().quarantine("0BAD", QueueState::kDeferred, "x");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace postern::queue

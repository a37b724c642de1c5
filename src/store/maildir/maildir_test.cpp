#include "store/maildir/maildir.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <algorithm>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace postern::store::maildir {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/postern-maildir-XXXXXX";
  return mkdtemp(tmpl);
}

std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') out.push_back(e->d_name);
  closedir(d);
  return out;
}

TEST(Maildir, UniqueNamesCarrySizes) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(seen.insert(unique_name(10, 12)).second);
  std::string n = unique_name(123, 130);
  EXPECT_NE(n.find(",S=123,W=130"), std::string::npos);
  EXPECT_EQ(n.find('/'), std::string::npos);
  EXPECT_EQ(n.find(':'), std::string::npos);
  EXPECT_EQ(crlf_size("a\nb\r\nc\n"), 9u);
  EXPECT_EQ(crlf_size("\n\n\r\n\r"), 7u);  // a leading LF is bare; a trailing CR ends no line
  EXPECT_EQ(crlf_size(""), 0u);
  EXPECT_EQ(crlf_size("no line end"), 11u);
}

TEST(Maildir, UniqueNamesSortInTheOrderMade) {
  // New files get their UIDs in name order: that must be the order of delivery, across microsecond rollovers.
  std::vector<std::string> names;
  for (int i = 0; i < 2000; ++i) names.push_back(unique_name(1, 1));
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  // "<seconds>.M<microseconds, six digits>P...": 99999 must not sort after 100000.
  for (const auto& n : names) {
    size_t m = n.find(".M"), p = n.find('P');
    ASSERT_NE(m, std::string::npos);
    EXPECT_EQ(p - m - 2, 6u) << n;
  }
}

TEST(Maildir, TwoPhaseDelivery) {
  std::string root = temp_dir() + "/user/Maildir";
  StoreError err;
  auto p = write_tmp(root, {"Subject: x\n", "\nbody\n"}, Owner{}, 0, err);
  ASSERT_TRUE(p) << err.detail;
  // Written, but in no directory yet (an O_TMPFILE file; in tmp/ where the file system has none).
  EXPECT_EQ(list(root + "/tmp").size(), p->tmp_path.empty() ? 0u : 1u);
  EXPECT_EQ(p->fd >= 0, p->tmp_path.empty());
  EXPECT_TRUE(list(root + "/new").empty());
  auto final_path = commit(*p, err);
  ASSERT_TRUE(final_path);
  EXPECT_TRUE(list(root + "/tmp").empty());
  ASSERT_EQ(list(root + "/new").size(), 1u);
  std::ifstream in(*final_path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "Subject: x\n\nbody\n");
  struct stat st;
  ASSERT_EQ(stat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  EXPECT_EQ(p->fd, -1);

  auto q = write_tmp(root, {"x\n"}, Owner{}, 0, err);
  ASSERT_TRUE(q);
  abort(*q);
  EXPECT_TRUE(list(root + "/tmp").empty());
  EXPECT_EQ(list(root + "/new").size(), 1u);
  {
    auto dropped = write_tmp(root, {"y\n"}, Owner{}, 0, err);  // destroyed without commit
    ASSERT_TRUE(dropped);
  }
  EXPECT_EQ(list(root + "/new").size(), 1u);
  // A name taken already: linking the unnamed file fails and leaves nothing behind. (The tmp/ fallback
  // renames, which replaces: its names are unique instead, see unique_name.)
  auto twice = write_tmp(root, {"z\n"}, Owner{}, 0, err);
  ASSERT_TRUE(twice);
  if (!twice->tmp_path.empty()) GTEST_SKIP() << "no O_TMPFILE here";
  twice->name = list(root + "/new").front();
  EXPECT_FALSE(commit(*twice, err));
  EXPECT_TRUE(list(root + "/tmp").empty());
  ASSERT_EQ(list(root + "/new").size(), 1u);
  std::ifstream again(*final_path);
  std::stringstream kept;
  kept << again.rdbuf();
  EXPECT_EQ(kept.str(), "Subject: x\n\nbody\n");  // not replaced
}

TEST(Maildir, SizeLimitCountsExistingMail) {
  std::string root = temp_dir() + "/m";
  StoreError err;
  std::string body(600, 'x');
  auto a = write_tmp(root, {body}, Owner{}, 1000, err);
  ASSERT_TRUE(a);
  ASSERT_TRUE(commit(*a, err));
  auto b = write_tmp(root, {body}, Owner{}, 1000, err);
  EXPECT_FALSE(b);
  EXPECT_EQ(err.kind, ErrorKind::kQuotaExceeded);
  EXPECT_EQ(usage(root), 600u);
  EXPECT_TRUE(list(root + "/tmp").empty());
}

TEST(Maildir, Folders) {
  std::string root = temp_dir() + "/Maildir";
  ASSERT_TRUE(make_maildir(root, Owner{}));
  ASSERT_TRUE(make_folder(root, "Sent", Owner{}));
  struct stat st;
  EXPECT_EQ(stat((root + "/.Sent/cur").c_str(), &st), 0);
  EXPECT_EQ(stat((root + "/.Sent/maildirfolder").c_str(), &st), 0);
  EXPECT_FALSE(make_folder(root, "../x", Owner{}));
  EXPECT_FALSE(make_folder(root, "", Owner{}));
}

}  // namespace
}  // namespace postern::store::maildir

namespace postern::store::maildir {
namespace {

TEST(Maildir, ConcurrentCommitsIntoOneMailboxAllLand) {
  std::string root = temp_dir() + "/busy";
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        StoreError err;
        auto p = write_tmp(root, {"Subject: x\n\nbody\n"}, Owner{}, 0, err);
        if (p && commit(*p, err)) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(list(root + "/new").size(), 200u);
  EXPECT_TRUE(list(root + "/tmp").empty());
}

}  // namespace
}  // namespace postern::store::maildir

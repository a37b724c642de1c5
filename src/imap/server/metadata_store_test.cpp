// imap/server/metadata_store_test.cpp: the METADATA files on disk: updates, removal of the last entry, the
// entry limit, damaged and hostile files.
// Security: damaged files and a symlink in the file's place are the hostile inputs tested here.

#include "imap/server/metadata_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace postern::imap::server {
namespace {

using namespace std::string_literals;

class MetadataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/postern-metadata-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path() const { return dir_ + "/" + std::string(kMailboxMetadataFile); }
  std::string contents() const {
    std::ifstream in(path(), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  bool exists(const std::string& p) const {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
  }
  MetadataUpdate update(const MetadataChanges& changes, size_t max_entries = 10) {
    auto r = update_metadata(dir_, kMailboxMetadataFile, changes, max_entries, {});
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : MetadataUpdate{};
  }
  proto::MetadataEntries load() {
    auto r = load_metadata(dir_, kMailboxMetadataFile);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : proto::MetadataEntries{};
  }

  std::string dir_;
};

TEST_F(MetadataStoreTest, MissingFileHoldsNothing) {
  EXPECT_TRUE(load().empty());
  EXPECT_FALSE(load_metadata(dir_ + "/nosuch", kMailboxMetadataFile).ok());
}

TEST_F(MetadataStoreTest, UpdatesInOrderAndRemovesTheEmptyFile) {
  EXPECT_FALSE(update({{"/private/a", "1"}, {"/shared/b", "x\0y"s}, {"/private/a", "2"}}).too_many);
  EXPECT_EQ(load(), (proto::MetadataEntries{{"/private/a", "2"}, {"/shared/b", "x\0y"s}}));
  EXPECT_EQ(contents(), "postern-metadata 1\n/private/a 1\n2\n/shared/b 3\nx\0y\n"s);
  struct stat st;
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(exists(path() + ".tmp"));
  update({{"/private/a", std::nullopt}, {"/private/nosuch", std::nullopt}});
  EXPECT_EQ(load(), (proto::MetadataEntries{{"/shared/b", "x\0y"s}}));
  update({{"/shared/b", std::nullopt}});
  EXPECT_TRUE(load().empty());
  EXPECT_FALSE(exists(path()));
}

TEST_F(MetadataStoreTest, EntryLimit) {
  update({{"/private/a", "1"}, {"/private/b", "2"}}, 2);
  EXPECT_TRUE(update({{"/private/c", "3"}}, 2).too_many);
  EXPECT_EQ(load().size(), 2u);
  EXPECT_FALSE(update({{"/private/a", std::nullopt}, {"/private/c", "3"}}, 2).too_many);  // one out, one in
  EXPECT_FALSE(update({{"/private/c", "changed"}}, 2).too_many);
  // Over a limit lowered since: shrinking is allowed, growing is not.
  EXPECT_FALSE(update({{"/private/b", std::nullopt}}, 0).too_many);
  EXPECT_TRUE(update({{"/private/d", "4"}}, 0).too_many);
  EXPECT_EQ(load(), (proto::MetadataEntries{{"/private/c", "changed"}}));
}

TEST_F(MetadataStoreTest, DamagedFileKeepsItsFirstEntriesAndIsRewritten) {
  std::ofstream(path(), std::ios::binary) << "postern-metadata 1\n/private/a 1\nx\n/private/b 99\nshort";
  EXPECT_EQ(load(), (proto::MetadataEntries{{"/private/a", "x"}}));
  update({{"/private/c", "3"}});
  EXPECT_EQ(contents(), "postern-metadata 1\n/private/a 1\nx\n/private/c 1\n3\n");
  std::ofstream(path(), std::ios::binary) << "\x01\x02 garbage\n";
  EXPECT_TRUE(load().empty());
}

TEST_F(MetadataStoreTest, OnlyARegularFileIsRead) {
  ASSERT_EQ(::symlink("/etc/passwd", path().c_str()), 0);
  EXPECT_FALSE(load_metadata(dir_, kMailboxMetadataFile).ok());
  EXPECT_FALSE(update_metadata(dir_, kMailboxMetadataFile, {{"/private/a", "1"}}, 10, {}).ok());
  ::unlink(path().c_str());
  ASSERT_EQ(::mkdir(path().c_str(), 0700), 0);
  EXPECT_FALSE(load_metadata(dir_, kMailboxMetadataFile).ok());
}

TEST_F(MetadataStoreTest, ServerFileIsSeparate) {
  ASSERT_TRUE(update_metadata(dir_, kServerMetadataFile, {{"/shared/x", "s"}}, 10, {}).ok());
  EXPECT_TRUE(load().empty());
  auto server = load_metadata(dir_, kServerMetadataFile);
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(server->at("/shared/x"), "s");
}

}  // namespace
}  // namespace postern::imap::server

// store/maildir/folders_test.cpp: Folders against what Dovecot 2.3.19 (LAYOUT=maildir++, separator '/')
// does with the same names: the directory names, the refused names, delete and rename with children,
// INBOX, a subscriptions file Dovecot wrote, and deletes that must not follow symlinks out of the root.

#include "store/maildir/folders.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace postern::store::maildir {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/postern-folders-XXXXXX";
  return mkdtemp(tmpl);
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool present(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class FoldersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = temp_dir() + "/Maildir";
    ASSERT_TRUE(make_maildir(root_, Owner{}));
  }
  void TearDown() override { std::filesystem::remove_all(std::filesystem::path(root_).parent_path()); }
  std::string root_;
  Folders make(char separator = '/') { return Folders(root_, separator, Owner{}); }
};

TEST_F(FoldersTest, NamesMapLikeDovecot) {
  Folders f = make();
  const std::pair<const char*, const char*> cases[] = {
      {"Sent", "/.Sent"},
      {"a/b", "/.a.b"},
      {"a/b/c", "/.a.b.c"},
      {"Entwürfe", "/.Entw&APw-rfe"},
      {"日本語/台北", "/.&ZeVnLIqe-.&U,BTFw-"},
      {"a&b", "/.a&-b"},
      {"x~", "/.x~"},
      {"x/~y", "/.x.~y"},
      {"INBOX/child", "/.INBOX.child"},
      {"inbox/low", "/.INBOX.low"},
      {"cur", "/.cur"},  // Dovecot allows them: ".cur" cannot collide with cur/
      {"new/x", "/.new.x"},
      {"a/tmp", "/.a.tmp"},
      {"sp ace", "/.sp ace"},
      {"back\\slash", "/.back\\slash"},
      {"st*r", "/.st*r"},
      {"quo\"te", "/.quo\"te"},
  };
  for (const auto& [name, dir] : cases) {
    auto p = f.path_of(name);
    ASSERT_TRUE(p) << name << ": " << p.error().message;
    EXPECT_EQ(*p, root_ + dir) << name;
  }
  EXPECT_EQ(f.path_of("INBOX").value(), root_);
  EXPECT_EQ(f.path_of("iNbOx").value(), root_);

  Folders dot = make('.');
  EXPECT_EQ(dot.path_of("a.b").value(), root_ + "/.a.b");
  EXPECT_EQ(dot.path_of("INBOX.x").value(), root_ + "/.INBOX.x");
  EXPECT_FALSE(dot.path_of("u/v"));  // Dovecot: "Name must not have '/' characters"
  EXPECT_FALSE(dot.path_of("a..b"));
}

TEST_F(FoldersTest, RefusesNamesDovecotRefusesAndMore) {
  Folders f = make();
  for (const std::string& bad : std::vector<std::string>{"",
                                                         "x.y",
                                                         "..",
                                                         ".",
                                                         "a/../b",
                                                         "a/.hidden",
                                                         "~x",
                                                         "~",
                                                         "a//b",
                                                         "/a",
                                                         "a/",
                                                         "/",
                                                         "a\rb",
                                                         "a\nb",
                                                         "a\tb",
                                                         "a\x01"
                                                         "b",
                                                         "a\x7f"
                                                         "b",
                                                         "\xc3",
                                                         "a\xff",
                                                         "\xed\xa0\x80",
                                                         "DOVECOT-TRASHED",
                                                         std::string(300, 'x'),
                                                         std::string(100, 'x') + "/" + std::string(160, 'y')})
    EXPECT_FALSE(f.path_of(bad)) << bad;
  EXPECT_FALSE(f.path_of(std::string("a\0b", 3)));
  EXPECT_EQ(f.create("a.b").error, FolderError::kInvalidName);
  EXPECT_EQ(f.create("../escape").error, FolderError::kInvalidName);
  EXPECT_FALSE(present(root_ + "/../escape"));
  EXPECT_EQ(f.remove("..").error, FolderError::kInvalidName);
  EXPECT_EQ(f.rename("x", "../y").error, FolderError::kInvalidName);
  EXPECT_EQ(f.subscribe("a\nb", true).error, FolderError::kInvalidName);
}

TEST_F(FoldersTest, CreateListExists) {
  Folders f = make();
  ASSERT_TRUE(f.create("Sent").ok());
  ASSERT_TRUE(f.create("a/b/c").ok());
  ASSERT_TRUE(f.create("Entwürfe").ok());
  ASSERT_TRUE(f.create("INBOX/kid").ok());
  ASSERT_TRUE(f.create("q/").ok());  // RFC 3501 6.3.3: a trailing separator creates "q"
  EXPECT_TRUE(is_dir(root_ + "/.q/cur"));
  EXPECT_EQ(f.create("a//").error, FolderError::kInvalidName);
  for (const char* sub : {"/cur", "/new", "/tmp"}) EXPECT_TRUE(is_dir(root_ + "/.a.b.c" + sub));
  EXPECT_TRUE(present(root_ + "/.a.b.c/maildirfolder"));
  EXPECT_FALSE(present(root_ + "/.a"));  // parents only implicitly, as Dovecot
  EXPECT_EQ(f.create("Sent").error, FolderError::kExists);
  EXPECT_EQ(f.create("inbox").error, FolderError::kExists);

  EXPECT_TRUE(f.exists("INBOX"));
  EXPECT_TRUE(f.exists("a/b/c"));
  EXPECT_FALSE(f.exists("a/b"));
  EXPECT_FALSE(f.exists("nope"));

  // Directories Dovecot would list but whose names Folders refuses stay out; a plain file is no folder.
  for (const char* odd : {"/..x", "/.x.", "/.~t", "/.&AGE-", "/.&Jjo", "/.ä", "/.inbox.lower"})
    ASSERT_EQ(::mkdir((root_ + odd).c_str(), 0700), 0) << odd;
  write(root_ + "/.plainfile", "");
  ASSERT_EQ(::mkdir((root_ + "/.bare").c_str(), 0700), 0);  // no cur/: Dovecot lists it all the same

  Folders::Listing l = f.list();
  EXPECT_EQ(l.mailboxes,
            (std::vector<std::string>{"INBOX", "Entwürfe", "INBOX/kid", "Sent", "a/b/c", "bare", "q"}));
  EXPECT_EQ(l.nonexistent, (std::vector<std::string>{"a", "a/b"}));
}

TEST_F(FoldersTest, DeleteKeepsChildren) {
  Folders f = make();
  ASSERT_TRUE(f.create("a").ok());
  ASSERT_TRUE(f.create("a/b").ok());
  write(root_ + "/.a/cur/1.M1P1.host,S=5:2,S", "hello");
  write(root_ + "/.a/new/2.M2P2.host,S=5", "hello");
  for (const char* file : {"dovecot-uidlist", "dovecot-keywords", "dovecot.index", "dovecot.index.log",
                           "postern-index", "unknown-extra"})
    write(root_ + "/.a/" + file, "x");
  ASSERT_EQ(::mkdir((root_ + "/.a/subdir").c_str(), 0700), 0);
  write(root_ + "/.a/subdir/f", "y");

  ASSERT_TRUE(f.remove("a").ok());
  EXPECT_FALSE(present(root_ + "/.a"));
  EXPECT_FALSE(present(root_ + "/.DOVECOT-TRASHED"));
  EXPECT_TRUE(is_dir(root_ + "/.a.b/cur"));
  Folders::Listing l = f.list();
  EXPECT_EQ(l.mailboxes, (std::vector<std::string>{"INBOX", "a/b"}));
  EXPECT_EQ(l.nonexistent, (std::vector<std::string>{"a"}));

  EXPECT_EQ(f.remove("a").error, FolderError::kNotFound);  // Dovecot: NONEXISTENT
  EXPECT_EQ(f.remove("INBOX").error, FolderError::kInvalidName);
  EXPECT_EQ(f.remove("nope").error, FolderError::kNotFound);

  // A trash left behind by a crash does not stop the next delete.
  ASSERT_TRUE(f.create("c").ok());
  ASSERT_EQ(::mkdir((root_ + "/.DOVECOT-TRASHED").c_str(), 0700), 0);
  write(root_ + "/.DOVECOT-TRASHED/left", "z");
  ASSERT_TRUE(f.remove("c").ok());
  EXPECT_FALSE(present(root_ + "/.c"));
  EXPECT_FALSE(present(root_ + "/.DOVECOT-TRASHED"));
}

TEST_F(FoldersTest, DeleteNeverFollowsSymlinks) {
  std::string outside = temp_dir();
  ASSERT_TRUE(make_maildir(outside + "/box", Owner{}));
  write(outside + "/box/cur/precious", "keep me");
  write(outside + "/file", "keep me too");

  // A folder that is a symlink out of the root: only the link goes (as Dovecot does).
  ASSERT_EQ(::symlink((outside + "/box").c_str(), (root_ + "/.evil").c_str()), 0);
  Folders f = make();
  EXPECT_TRUE(f.exists("evil"));
  ASSERT_TRUE(f.remove("evil").ok());
  EXPECT_FALSE(present(root_ + "/.evil"));
  EXPECT_EQ(slurp(outside + "/box/cur/precious"), "keep me");

  // Symlinks inside a real folder are removed as links, their targets stay.
  ASSERT_TRUE(f.create("real").ok());
  ASSERT_EQ(::symlink((outside + "/box/cur").c_str(), (root_ + "/.real/cur/linkdir").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/file").c_str(), (root_ + "/.real/new/linkfile").c_str()), 0);
  ASSERT_EQ(::rmdir((root_ + "/.real/tmp").c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (root_ + "/.real/tmp").c_str()), 0);
  ASSERT_TRUE(f.remove("real").ok());
  EXPECT_FALSE(present(root_ + "/.real"));
  EXPECT_EQ(slurp(outside + "/box/cur/precious"), "keep me");
  EXPECT_EQ(slurp(outside + "/file"), "keep me too");
  EXPECT_TRUE(is_dir(outside + "/box/new"));
  std::filesystem::remove_all(outside);
}

TEST_F(FoldersTest, RenameMovesChildren) {
  Folders f = make();
  ASSERT_TRUE(f.create("a").ok());
  ASSERT_TRUE(f.create("a/b").ok());
  ASSERT_TRUE(f.create("a/b/c").ok());
  ASSERT_TRUE(f.create("ab").ok());  // not a child of "a"
  write(root_ + "/.a.b/cur/1.M1P1.host,S=2:2,", "hi");

  ASSERT_TRUE(f.rename("a", "z").ok());
  EXPECT_EQ(f.list().mailboxes, (std::vector<std::string>{"INBOX", "ab", "z", "z/b", "z/b/c"}));
  EXPECT_EQ(slurp(root_ + "/.z.b/cur/1.M1P1.host,S=2:2,"), "hi");

  EXPECT_EQ(f.rename("z", "ab").error, FolderError::kExists);
  EXPECT_EQ(f.rename("z", "INBOX").error, FolderError::kExists);
  EXPECT_EQ(f.rename("z/b", "z/b/c/d").error, FolderError::kInvalidName);  // under itself
  EXPECT_EQ(f.rename("nope", "x").error, FolderError::kNotFound);

  // A parent that exists only through children is renamed through them (Dovecot does the same).
  ASSERT_TRUE(f.remove("z").ok());
  ASSERT_TRUE(f.rename("z", "y").ok());
  EXPECT_EQ(f.list().mailboxes, (std::vector<std::string>{"INBOX", "ab", "y/b", "y/b/c"}));

  // A new parent is implicit, and INBOX children are ordinary folders.
  ASSERT_TRUE(f.rename("ab", "inbox/deep/ab").ok());
  EXPECT_TRUE(is_dir(root_ + "/.INBOX.deep.ab"));
}

TEST_F(FoldersTest, RenameInboxMovesMessages) {
  Folders f = make();
  ASSERT_TRUE(f.create("INBOX/kid").ok());
  write(root_ + "/new/1.M1P1.host,S=3", "new");
  write(root_ + "/cur/2.M2P2.host,S=3:2,S", "cur");
  write(root_ + "/dovecot-keywords", "0 $Junk\n");

  ASSERT_TRUE(f.rename("INBOX", "Old").ok());
  EXPECT_EQ(slurp(root_ + "/.Old/new/1.M1P1.host,S=3"), "new");
  EXPECT_EQ(slurp(root_ + "/.Old/cur/2.M2P2.host,S=3:2,S"), "cur");
  EXPECT_EQ(slurp(root_ + "/.Old/dovecot-keywords"), "0 $Junk\n");
  EXPECT_FALSE(present(root_ + "/new/1.M1P1.host,S=3"));
  EXPECT_FALSE(present(root_ + "/cur/2.M2P2.host,S=3:2,S"));
  EXPECT_TRUE(is_dir(root_ + "/.INBOX.kid"));  // INBOX's children stay
  EXPECT_TRUE(f.exists("INBOX"));
  EXPECT_EQ(f.rename("INBOX", "Old").error, FolderError::kExists);
}

// Written by Dovecot 2.3.19 (doveadm/imap, separator '/') after CREATE and SUBSCRIBE of INBOX, Sent,
// "Entw&APw-rfe", a/b, INBOX/kid, "a&-b", "&ZeVnLIqe-/&U,BTFw-", then UNSUBSCRIBE and SUBSCRIBE Sent.
constexpr char kDovecotSubscriptions[] =
    "V\t2\n\nINBOX\nEntw&APw-rfe\na\tb\nINBOX\tkid\na&-b\n&ZeVnLIqe-\t&U,BTFw-\nSent\n";

TEST_F(FoldersTest, ReadsDovecotSubscriptions) {
  write(root_ + "/subscriptions", kDovecotSubscriptions);
  Folders f = make();
  EXPECT_EQ(f.subscriptions(), (std::vector<std::string>{"INBOX", "Entwürfe", "a/b", "INBOX/kid", "a&b",
                                                         "日本語/台北", "Sent"}));
  Folders dot = make('.');
  EXPECT_EQ(dot.subscriptions()[2], "a.b");
}

TEST_F(FoldersTest, WritesSubscriptionsAsDovecot) {
  Folders f = make();
  for (const char* name : {"Sent", "Entwürfe", "a/b", "INBOX/kid", "a&b", "日本語/台北"})
    ASSERT_TRUE(f.create(name).ok()) << name;
  for (const char* name : {"INBOX", "Sent", "Entwürfe", "a/b", "INBOX/kid", "a&b", "日本語/台北", "inbox"})
    ASSERT_TRUE(f.subscribe(name, true).ok()) << name;
  ASSERT_TRUE(f.subscribe("Sent", false).ok());
  ASSERT_TRUE(f.subscribe("Sent", false).ok());
  ASSERT_TRUE(f.subscribe("Sent", true).ok());
  EXPECT_EQ(slurp(root_ + "/subscriptions"), kDovecotSubscriptions);
  EXPECT_FALSE(present(root_ + "/subscriptions.tmp"));

  EXPECT_EQ(f.subscribe("nope", true).error, FolderError::kNotFound);  // Dovecot refuses it too
  ASSERT_TRUE(f.subscribe("nope", false).ok());
  // Subscriptions stay when the mailbox goes (RFC 3501 6.3.6; Dovecot keeps them too).
  ASSERT_TRUE(f.remove("a/b").ok());
  EXPECT_EQ(f.subscriptions().size(), 7u);
}

TEST_F(FoldersTest, ReadsVersion1Subscriptions) {
  write(root_ + "/subscriptions", "INBOX\nSent\na.b\nEntw&APw-rfe\n");
  Folders f = make();
  EXPECT_EQ(f.subscriptions(), (std::vector<std::string>{"INBOX", "Sent", "a/b", "Entwürfe"}));
  ASSERT_TRUE(f.subscribe("INBOX", false).ok());
  EXPECT_EQ(slurp(root_ + "/subscriptions"), "V\t2\n\nSent\na\tb\nEntw&APw-rfe\n");
}

TEST_F(FoldersTest, EnsureDefaults) {
  Folders f = make();
  ASSERT_TRUE(f.create("Trash").ok());
  f.ensure_defaults({"Archive", "Sent"});
  EXPECT_EQ(f.list().mailboxes,
            (std::vector<std::string>{"INBOX", "Archive", "Drafts", "Sent", "Templates", "Trash"}));
  // Trash existed already: the user's choice not to subscribe it stands.
  EXPECT_EQ(f.subscriptions(), (std::vector<std::string>{"Drafts", "Sent", "Templates", "Archive"}));
  f.ensure_defaults({});
  EXPECT_EQ(f.subscriptions().size(), 4u);
}

TEST(Folders, CreateMakesMissingRoot) {
  std::string root = temp_dir() + "/new/Maildir";
  Folders f(root, '/', Owner{});
  ASSERT_TRUE(f.create("Sent").ok());
  EXPECT_TRUE(is_dir(root + "/cur"));
  EXPECT_TRUE(is_dir(root + "/.Sent/new"));
  std::filesystem::remove_all(std::filesystem::path(root).parent_path().parent_path());
}

}  // namespace
}  // namespace postern::store::maildir

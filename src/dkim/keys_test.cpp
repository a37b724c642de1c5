// dkim/keys_test.cpp: the key directory (names, the newest key of a domain signs, a broken key is skipped)
// and which mail KeyTable::sign signs: trusted origins only, by the one From field's domain.
#include "dkim/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "base/files.hpp"

namespace postern::dkim {
namespace {

class DkimKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/postern-dkim-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes a new key DIR/dkim/<domain>/<selector>.key with the given modification time.
  void write_key(const std::string& domain, const std::string& selector, KeyType type, time_t mtime) {
    std::filesystem::create_directories(key_directory(dir_) + "/" + domain);
    std::string path = key_directory(dir_) + "/" + domain + "/" + selector + ".key";
    auto key = generate_key(type);
    ASSERT_TRUE(key.ok());
    ASSERT_TRUE(write_file_atomically(path, private_key_pem(key->get()), 0600).ok());
    timespec times[2] = {{mtime, 0}, {mtime, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }

  queue::Envelope envelope(bool trusted) {
    queue::Envelope env;
    env.queue_id = "ABC";
    env.trusted_origin = trusted;
    env.arrival = std::chrono::system_clock::now();
    return env;
  }

  std::string dir_;
};

TEST(DkimNames, Valid) {
  for (const char* ok : {"example.org", "202611", "mail-2", "a_b.sel", "x"})
    EXPECT_TRUE(valid_name(ok)) << ok;
  for (const char* bad : {"", ".", "a..b", "a.", ".a", "-a", "a-", "A", "../x", "a/b", "a b", "é"})
    EXPECT_FALSE(valid_name(bad)) << bad;
}

TEST_F(DkimKeys, NewestKeyOfADomainSigns) {
  write_key("example.org", "old", KeyType::kRsa, 1000);
  write_key("example.org", "new", KeyType::kEd25519, 2000);
  write_key("other.example", "s", KeyType::kEd25519, 1500);
  std::filesystem::create_directories(key_directory(dir_) + "/Bad..name");
  std::ofstream(key_directory(dir_) + "/other.example/notes.txt") << "not a key file name\n";
  auto files = key_files(dir_);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].selector, "new");
  EXPECT_EQ(files[1].selector, "old");
  EXPECT_EQ(files[2].domain, "other.example");

  auto table = KeyTable::load(dir_, read_file);
  ASSERT_TRUE(table->find("example.org"));
  EXPECT_EQ(table->find("example.org")->selector, "new");
  EXPECT_TRUE(table->find("other.example"));
  EXPECT_FALSE(table->find("nokey.example"));

  // The newest key does not load: the next one signs.
  std::ofstream(key_directory(dir_) + "/example.org/new.key") << "garbage\n";
  table = KeyTable::load(dir_, read_file);
  ASSERT_TRUE(table->find("example.org"));
  EXPECT_EQ(table->find("example.org")->selector, "old");
}

TEST_F(DkimKeys, WhichMailIsSigned) {
  write_key("example.org", "s", KeyType::kEd25519, 1000);
  auto table = KeyTable::load(dir_, read_file);
  std::string body = "\nhello\n";
  auto signature = [&](bool trusted, const std::string& header) {
    return table->sign(envelope(trusted), header + body);
  };
  EXPECT_EQ(signature(true, "From: A <a@Example.ORG>\n").rfind("DKIM-Signature: v=1; a=ed25519-sha256;", 0),
            0u);
  EXPECT_EQ(signature(true, "From: a@example.org, b@example.org\n").rfind("DKIM-Signature:", 0), 0u);
  EXPECT_EQ(signature(false, "From: a@example.org\n"), "") << "not a trusted origin";
  EXPECT_EQ(signature(true, "From: a@other.example\n"), "") << "no key";
  EXPECT_EQ(signature(true, "From: a@sub.example.org\n"), "") << "a subdomain has no key of its own";
  EXPECT_EQ(signature(true, "From: a@example.org, b@other.example\n"), "") << "two domains";
  EXPECT_EQ(signature(true, "From: a@example.org\nFrom: b@example.org\n"), "") << "two From fields";
  EXPECT_EQ(signature(true, "Subject: no From\n"), "");
}

}  // namespace
}  // namespace postern::dkim

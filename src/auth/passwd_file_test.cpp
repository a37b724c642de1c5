#include "auth/passwd_file.hpp"

#include <argon2.h>
#include <gtest/gtest.h>

#include "auth/sasl/scram.hpp"

namespace postern::auth {
namespace {

TEST(PasswdFile, SetPasswordStoresCryptAndScram) {
  PasswdEntry e;
  e.user = "alice@example.test";
  e.extra = "userdb_quota_rule=*:storage=1G postern_scram_sha_256={SCRAM-SHA-256}old";
  ASSERT_TRUE(set_password(e, "s3cret").ok());
  EXPECT_TRUE(e.password.starts_with("{SHA512-CRYPT}$6$")) << e.password;
  EXPECT_TRUE(verify_password("s3cret", e.password));
  EXPECT_TRUE(
      e.extra.starts_with("userdb_quota_rule=*:storage=1G postern_scram_sha_256={SCRAM-SHA-256}4096,"))
      << e.extra;
  auto keys = scram_keys_of(e);
  ASSERT_TRUE(keys);
  EXPECT_TRUE(sasl::scram_verify("s3cret", *keys));
  // The line survives the file format.
  auto parsed = parse_passwd_file(format_passwd_entry(e), "users");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->front().extra, e.extra);
}

TEST(PasswdFile, DovecotSchemes) {
  // {SCRAM-SHA-256} as the password itself verifies plaintext logins and gives SCRAM its keys.
  auto keys = sasl::scram_keys("pencil", "0123456789abcdef", 4096);
  PasswdEntry e;
  e.password = "{SCRAM-SHA-256}" + sasl::format_scram_keys(keys);
  EXPECT_TRUE(verify_password("pencil", e.password));
  EXPECT_FALSE(verify_password("pencil!", e.password));
  EXPECT_TRUE(scram_keys_of(e));
  // A crypt-only user has no SCRAM keys.
  e.password = "{SHA512-CRYPT}$6$x$y";
  EXPECT_FALSE(scram_keys_of(e));

  char encoded[256];
  const char* salt = "saltsaltsalt";
  ASSERT_EQ(argon2id_hash_encoded(2, 1024, 1, "pw", 2, salt, 12, 32, encoded, sizeof encoded), ARGON2_OK);
  EXPECT_TRUE(verify_password("pw", std::string("{ARGON2ID}") + encoded));
  EXPECT_FALSE(verify_password("px", std::string("{ARGON2ID}") + encoded));
  EXPECT_FALSE(verify_password("pw", std::string("{ARGON2I}") + encoded));  // the other variant
  ASSERT_EQ(argon2i_hash_encoded(2, 1024, 1, "pw", 2, salt, 12, 32, encoded, sizeof encoded), ARGON2_OK);
  EXPECT_TRUE(verify_password("pw", std::string("{ARGON2I}") + encoded));
  EXPECT_TRUE(verify_password("pw", "{PLAIN}pw"));
  EXPECT_FALSE(verify_password("pw", "{UNKNOWN}pw"));
  EXPECT_FALSE(verify_password("pw", "{PLAIN"));
}

}  // namespace
}  // namespace postern::auth

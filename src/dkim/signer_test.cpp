// dkim/signer_test.cpp: signatures checked by a small verifier written here on OpenSSL (the public key taken
// from the DNS record keygen prints), for rsa-sha256 and ed25519-sha256: they verify, and stop verifying
// when a signed field changes, a From field is added or the body changes. RFC 8032 7.1's key (the one of
// RFC 8463's example) gives RFC 8463's body hash and public key record, and a signature python3-dkim
// verified (Ed25519 signatures are deterministic).
#include "dkim/signer.hpp"

#include <openssl/sha.h>
#include <openssl/x509.h>

#include <map>
#include <regex>

#include <gtest/gtest.h>

#include "auth/sasl/base64.hpp"
#include "base/strings.hpp"
#include "dkim/canon.hpp"
#include "dkim/keys.hpp"

namespace postern::dkim {
namespace {

// RFC 6376 / RFC 8463's example message, stored with LF line ends.
constexpr std::string_view kMessage =
    "From: Joe SixPack <joe@football.example.com>\n"
    "To: Suzie Q <suzie@shopping.example.net>\n"
    "Subject: Is dinner ready?\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\n"
    "\n"
    "Hi.\n"
    "\n"
    "We lost the game.  Are you hungry yet?\n"
    "\n"
    "Joe.\n";

constexpr auto kTime = std::chrono::system_clock::time_point(std::chrono::seconds(1528637909));

std::shared_ptr<EVP_PKEY> rfc8032_key() {
  auto seed = auth::sasl::base64_decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=");
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed->data()), seed->size());
  return std::shared_ptr<EVP_PKEY>(pkey, EVP_PKEY_free);
}

// The public key of a key record ("v=DKIM1; k=...; p=...").
std::shared_ptr<EVP_PKEY> public_key(const std::string& record) {
  std::smatch m;
  EXPECT_TRUE(std::regex_match(record, m, std::regex("v=DKIM1; k=(rsa|ed25519); p=([A-Za-z0-9+/=]+)")));
  auto der = auth::sasl::base64_decode(m[2].str());
  auto bytes = reinterpret_cast<const unsigned char*>(der->data());
  EVP_PKEY* pkey = m[1] == "ed25519"
                       ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes, der->size())
                       : d2i_PUBKEY(nullptr, &bytes, static_cast<long>(der->size()));
  return std::shared_ptr<EVP_PKEY>(pkey, EVP_PKEY_free);
}

std::string sha256_b64(std::string_view data) {
  unsigned char digest[32];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return auth::sasl::base64_encode({reinterpret_cast<const char*>(digest), sizeof digest});
}

// RFC 6376 6.1 for a message whose first field is the signature (relaxed/relaxed only): true when it
// verifies with `pub`.
bool verify(std::string_view message, EVP_PKEY* pub) {
  size_t body_offset = 0;
  auto fields = split_header(message, body_offset);
  if (fields.empty() || !iequals(fields[0].name, "DKIM-Signature")) return false;
  std::string value = relaxed_header(fields[0].text).substr(std::string_view("dkim-signature:").size());
  std::map<std::string, std::string> tags;
  for (auto tag : split(value, ';')) {
    tag = trim(tag);
    size_t eq = tag.find('=');
    std::string v(tag.substr(eq + 1));
    std::erase(v, ' ');
    tags[std::string(trim(tag.substr(0, eq)))] = v;
  }
  std::string canonical_body;
  RelaxedBody canon([&](std::string_view piece) { canonical_body += piece; });
  canon.feed(message.substr(body_offset));
  canon.finish();
  if (tags["c"] != "relaxed/relaxed" || sha256_b64(canonical_body) != tags["bh"]) return false;

  std::string data;
  std::vector<bool> used(fields.size());
  for (auto name : split(tags["h"], ':'))
    for (size_t i = fields.size(); i-- > 1;)
      if (!used[i] && iequals(fields[i].name, name)) {
        used[i] = true;
        data += relaxed_header(fields[i].text) + "\r\n";
        break;
      }
  data += relaxed_header(std::regex_replace(std::string(fields[0].text), std::regex("(;\\s*b=)[^;]*"), "$1"));
  auto sig = auth::sasl::base64_decode(tags["b"]);
  if (!sig) return false;
  bool ed25519 = tags["a"] == "ed25519-sha256";
  std::string signed_data = ed25519 ? *auth::sasl::base64_decode(sha256_b64(data)) : data;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, ed25519 ? nullptr : EVP_sha256(), nullptr, pub) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                       reinterpret_cast<const unsigned char*>(signed_data.data()), signed_data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

void replace(std::string& s, std::string_view from, std::string_view to) {
  size_t at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
}

TEST(DkimSigner, Rfc8463KeyRecordAndBodyHash) {
  auto key = rfc8032_key();
  EXPECT_EQ(key_record(key.get()), "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  auto field = sign(kMessage, {"football.example.com", "brisbane", key}, kTime);
  ASSERT_TRUE(field.ok()) << field.error().message;
  // Checked with python3-dkim's dkim.verify against the key record above.
  EXPECT_EQ(*field,
            "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\n"
            "\td=football.example.com; s=brisbane; t=1528637909; h=from:subject:date:\n"
            "\tmessage-id:to:from; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=roSFYD\n"
            "\tMb74ju+gkp5KhPiLStZO7U7T1oJn5m7y8c1/xfDpAKeEdFZZaQq+MgpCVCbrutmabOX8NfmMGYoMt\n"
            "\twBQ==\n");
}

TEST(DkimSigner, SignThenVerifyBothKeyTypes) {
  for (auto type : {KeyType::kRsa, KeyType::kEd25519}) {
    auto key = generate_key(type);
    ASSERT_TRUE(key.ok());
    auto pub = public_key(key_record(key->get()));
    ASSERT_TRUE(pub);
    std::string message(kMessage);
    message.insert(message.find("Subject"),
                   "Cc: a@example.net,\n  b@example.net\nList-Id: <x.example.net>\n");
    message += "trailing  white space \t\n\n\n";
    auto field = sign(message, {"football.example.com", "sel-1", *key}, kTime);
    ASSERT_TRUE(field.ok()) << field.error().message;
    std::string expected_a = type == KeyType::kRsa ? "a=rsa-sha256;" : "a=ed25519-sha256;";
    EXPECT_NE(field->find(expected_a), std::string::npos) << *field;
    std::string unfolded = *field;
    std::erase(unfolded, '\n');
    std::erase(unfolded, '\t');
    EXPECT_NE(unfolded.find(" h=from:subject:date:message-id:to:cc:list-id:from;"), std::string::npos)
        << *field;
    EXPECT_EQ(field->find("l="), std::string::npos);
    EXPECT_EQ(field->find("x="), std::string::npos);
    EXPECT_EQ(field->back(), '\n');
    for (auto line : split(*field, '\n')) EXPECT_LE(line.size(), 78u) << *field;

    std::string signed_message = *field + message;
    EXPECT_TRUE(verify(signed_message, pub.get())) << signed_message;
    // The same message on the wire form's terms: more empty lines at the end change nothing.
    EXPECT_TRUE(verify(signed_message + "\n\n", pub.get()));

    std::string changed = signed_message;
    replace(changed, "Is dinner ready?", "Is dinner ready!");
    EXPECT_FALSE(verify(changed, pub.get()));
    changed = signed_message;
    replace(changed, "Message-ID:", "Date: Sat, 12 Jul 2003 21:00:37 -0700\nMessage-ID:");
    EXPECT_FALSE(verify(changed, pub.get())) << "a second Date is not signed, but the first is";
    changed = signed_message;
    replace(changed, "Subject:", "From: mallory@evil.example\nSubject:");
    EXPECT_FALSE(verify(changed, pub.get())) << "From is oversigned";
    changed = signed_message;
    replace(changed, "hungry", "angry");
    EXPECT_FALSE(verify(changed, pub.get()));
    // A field that is not signed may change; folding and white space may change (relaxed).
    changed = signed_message;
    replace(changed, "Subject:", "X-Mailer: added\nSubject:");
    replace(changed, "Is dinner ready?", "Is  dinner\n\tready?");
    replace(changed, "game.  Are", "game. \t Are");
    EXPECT_TRUE(verify(changed, pub.get()));
  }
}

TEST(DkimSigner, NeedsAFromField) {
  auto field = sign("Subject: no sender\n\nbody\n", {"example.org", "s", rfc8032_key()}, kTime);
  ASSERT_FALSE(field.ok());
  EXPECT_EQ(field.error().message, "the message has no From field");
}

}  // namespace
}  // namespace postern::dkim

#include "tls/client.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>

#include "config/config.hpp"
#include "tls/server.hpp"

namespace postern::tls {
namespace {

// A server with the self-signed certificate of mx.example.org, and handshakes with it over memory BIOs.
class ClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = ::testing::TempDir() + "tls_client";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir + "/queue");
    std::ofstream(dir + "/main.cf") << "myhostname = mx.example.org\nqueue_directory = " << dir << "/queue\n";
    auto cfg = config::Config::load(dir);
    ASSERT_TRUE(cfg.ok()) << cfg.error().message;
    auto pem = ensure_self_signed(*cfg);
    ASSERT_TRUE(pem.ok()) << pem.error().message;
    pem_ = *pem;
    server_ = SSL_CTX_new(TLS_server_method());
    ASSERT_EQ(SSL_CTX_use_certificate_chain_file(server_, pem_.c_str()), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(server_, pem_.c_str(), SSL_FILETYPE_PEM), 1);
    trusting_ = SSL_CTX_new(TLS_client_method());
    ASSERT_TRUE(configure_client_context(trusting_, pem_).ok());
    system_ = SSL_CTX_new(TLS_client_method());
    ASSERT_TRUE(configure_client_context(system_, "").ok());
  }
  void TearDown() override {
    SSL_free(client_);
    SSL_CTX_free(server_);
    SSL_CTX_free(trusting_);
    SSL_CTX_free(system_);
  }

  // A client SSL on `ctx`, to be set up by the test before handshake().
  SSL* client(SSL_CTX* ctx) {
    client_ = SSL_new(ctx);
    SSL_set_tlsext_host_name(client_, "mx.example.org");
    return client_;
  }

  // Runs the handshake to its end; whether both sides completed it.
  bool handshake() {
    SSL* server = SSL_new(server_);
    BIO *a = nullptr, *b = nullptr;
    BIO_new_bio_pair(&a, 0, &b, 0);
    SSL_set_bio(client_, a, a);
    SSL_set_bio(server, b, b);
    SSL_set_connect_state(client_);
    SSL_set_accept_state(server);
    bool client_done = false, server_done = false;
    for (int i = 0; i < 20 && !(client_done && server_done); ++i) {
      client_done = client_done || SSL_do_handshake(client_) == 1;
      server_done = server_done || SSL_do_handshake(server) == 1;
    }
    SSL_free(server);
    return client_done && server_done;
  }

  // The SHA-256 digest of the server certificate's public key (a DANE-EE 3 1 1 record's data).
  std::vector<uint8_t> spki_sha256() {
    FILE* f = std::fopen(pem_.c_str(), "r");
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    while (cert == nullptr && !std::feof(f)) cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    unsigned char* der = nullptr;
    int n = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    std::vector<uint8_t> digest(32);
    unsigned int len = 0;
    EVP_Digest(der, static_cast<size_t>(n), digest.data(), &len, EVP_sha256(), nullptr);
    OPENSSL_free(der);
    X509_free(cert);
    return digest;
  }

  std::string pem_;
  SSL_CTX* server_ = nullptr;
  SSL_CTX* trusting_ = nullptr;  // the server's certificate is in its store (smtp_tls_CAfile)
  SSL_CTX* system_ = nullptr;    // the system store: the server's certificate is not trusted
  SSL* client_ = nullptr;
};

TEST_F(ClientTlsTest, PkixTrustAndNames) {
  client(trusting_);
  ASSERT_TRUE(handshake());
  EXPECT_EQ(peer_trust(client_), Trust::kTrusted);  // no name asked for
  SSL_free(client_);

  ASSERT_TRUE(require_pkix_name(client(trusting_), {"mx.example.org"}).ok());
  ASSERT_TRUE(handshake());
  EXPECT_EQ(peer_trust(client_), Trust::kVerified);
  EXPECT_EQ(verify_error(client_), "");
  SSL_free(client_);

  ASSERT_TRUE(require_pkix_name(client(trusting_), {"other.example", "example.org"}).ok());
  ASSERT_TRUE(handshake());  // the handshake goes on: the caller decides
  EXPECT_EQ(peer_trust(client_), Trust::kUntrusted);
  EXPECT_EQ(verify_error(client_), "hostname mismatch");
  SSL_free(client_);

  ASSERT_TRUE(require_pkix_name(client(system_), {"mx.example.org"}).ok());
  ASSERT_TRUE(handshake());
  EXPECT_EQ(peer_trust(client_), Trust::kUntrusted);
  EXPECT_NE(verify_error(client_), "");
  EXPECT_FALSE(require_pkix_name(client_, {}).ok());
}

TEST_F(ClientTlsTest, DaneEeMatchesWithoutStoreOrName) {
  // RFC 7672 3.1.1: DANE-EE ignores the name and the trust store.
  ASSERT_TRUE(require_dane(client(system_), {"other.example"}, {{3, 1, 1, spki_sha256()}}).ok());
  ASSERT_TRUE(handshake());
  EXPECT_EQ(peer_trust(client_), Trust::kVerified);
  SSL_free(client_);

  auto wrong = spki_sha256();
  wrong[0] ^= 1;
  ASSERT_TRUE(require_dane(client(trusting_), {"mx.example.org"}, {{3, 1, 1, wrong}}).ok());
  ASSERT_TRUE(handshake());
  EXPECT_EQ(peer_trust(client_), Trust::kUntrusted);  // no PKIX fallback, even with the store trusting it
  EXPECT_NE(verify_error(client_), "");
}

TEST(ClientTls, UsableRecords) {
  EXPECT_TRUE(usable_for_smtp({3, 1, 1, {}}));
  EXPECT_TRUE(usable_for_smtp({2, 0, 0, {}}));
  EXPECT_TRUE(usable_for_smtp({3, 0, 2, {}}));
  EXPECT_FALSE(usable_for_smtp({0, 0, 1, {}}));  // PKIX-TA
  EXPECT_FALSE(usable_for_smtp({1, 1, 1, {}}));  // PKIX-EE
  EXPECT_FALSE(usable_for_smtp({3, 2, 1, {}}));
  EXPECT_FALSE(usable_for_smtp({3, 1, 3, {}}));
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_TRUE(configure_client_context(ctx, "").ok());
  SSL* ssl = SSL_new(ctx);
  EXPECT_FALSE(require_dane(ssl, {"mx.example.org"}, {{1, 1, 1, std::vector<uint8_t>(32)}}).ok());
  EXPECT_FALSE(require_dane(ssl, {}, {{3, 1, 1, std::vector<uint8_t>(32)}}).ok());
  SSL_free(ssl);
  EXPECT_FALSE(configure_client_context(ctx, "/no/such/ca.pem").ok());
  SSL_CTX_free(ctx);
  EXPECT_EQ(trust_name(Trust::kVerified), "Verified");
  EXPECT_EQ(trust_name(Trust::kUntrusted), "Untrusted");
}

}  // namespace
}  // namespace postern::tls

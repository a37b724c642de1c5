// tls/server.hpp: the server side of TLS (OpenSSL 3) for every protocol: the certificates and keys named by
// the configuration (ssl_cert_file/ssl_key_file, smtpd_tls_cert_file/smtpd_tls_key_file for the SMTP
// services, tls_server_sni_maps for more names), the protocol floor (ssl_min_protocol, never below TLS 1.2),
// the cipher list, and a self-signed certificate made on first start when none is configured. A reload
// builds a new Contexts; connections keep the one they started with (each SSL holds its SSL_CTX).
// Security: certificate and key files are the administrator's; the key is read while still root (or through
// the privileged helper) and never logged. Client input only reaches OpenSSL.
#pragma once

#include <openssl/ssl.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"
#include "tls/info.hpp"

namespace postern::tls {

// Reads a file TLS needs (a certificate chain or key).
using FileReader = std::function<Result<std::string>(const std::string& path)>;
Result<std::string> read_directly(const std::string& path);

// The files TLS reads under `config` (certificates, keys, SNI chains): the privileged helper serves these
// and nothing else.
std::vector<std::string> configured_files(const config::Config& config);

// Makes the self-signed certificate (an ECDSA P-256 key and a certificate for myhostname, valid 10 years,
// key and certificate in one PEM file, mode 0600) when no ssl_cert_file is configured and the file does not
// exist yet. Returns its path, or an empty string when a certificate is configured.
Result<std::string> ensure_self_signed(const config::Config& config);

class Contexts {
 public:
  ~Contexts();
  Contexts(const Contexts&) = delete;
  Contexts& operator=(const Contexts&) = delete;

  // Loads every certificate the configuration names; an error names the file and what is wrong with it.
  static Result<std::shared_ptr<Contexts>> load(const config::Config& config, const FileReader& read);

  // The context for a service ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s").
  SSL_CTX* context(std::string_view service) const;
  // One line per certificate for the log: file, subject, expiry.
  const std::vector<std::string>& summary() const { return summary_; }

 private:
  Contexts() = default;
  struct Sni {
    std::map<std::string, SSL_CTX*, std::less<>>
        by_name;  // lower-case host name, or ".domain" for subdomains
    SSL_CTX* find(std::string_view host) const;
  };
  static int on_servername(SSL* ssl, int* alert, void* arg);

  SSL_CTX* general_ = nullptr;  // ssl_cert_file
  SSL_CTX* smtp_ = nullptr;     // smtpd_tls_cert_file, or general_
  std::vector<SSL_CTX*> owned_;
  Sni sni_;
  std::vector<std::string> summary_;
};

// What a session may know of an established connection: protocol, cipher, tls-exporter (RFC 9266; only
// for TLS 1.3, or TLS 1.2 with the extended master secret).
Info describe(SSL* ssl);
// The last OpenSSL error of this thread as text ("wrong version number"), clearing the queue.
std::string last_error();

}  // namespace postern::tls

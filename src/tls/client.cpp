// tls/client.cpp: client-side TLS peer checks (see client.hpp).
#include "tls/client.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

namespace postern::tls {

std::string_view trust_name(Trust trust) {
  switch (trust) {
    case Trust::kNone:
      return "none";
    case Trust::kUntrusted:
      return "Untrusted";
    case Trust::kTrusted:
      return "Trusted";
    case Trust::kVerified:
      return "Verified";
  }
  return "none";
}

Status configure_client_context(SSL_CTX* ctx, const std::string& ca_file) {
  bool loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) == 1
                                : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) == 1;
  if (!loaded) {
    const char* reason = ERR_reason_error_string(ERR_get_error());
    std::string why = reason != nullptr ? reason : "unknown error";
    ERR_clear_error();
    return Error{fmt::format("smtp_tls_CAfile: cannot load \"{}\": {}",
                             ca_file.empty() ? "the system trust store" : ca_file, why)};
  }
  if (SSL_CTX_dane_enable(ctx) <= 0) return Error{"OpenSSL: cannot enable DANE"};
  SSL_CTX_dane_set_flags(ctx, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  return Ok{};
}

namespace {

// The names a DANE-TA or PKIX match must show; partial wildcards ("f*.example") are not matched.
Status add_names(SSL* ssl, const std::vector<std::string>& names, size_t from) {
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  for (size_t i = from; i < names.size(); ++i)
    if (SSL_add1_host(ssl, names[i].c_str()) != 1)
      return Error{fmt::format("bad peer name \"{}\"", names[i])};
  return Ok{};
}

}  // namespace

Status require_pkix_name(SSL* ssl, const std::vector<std::string>& names) {
  if (names.empty()) return Error{"no peer name to verify"};
  return add_names(ssl, names, 0);
}

bool usable_for_smtp(const dns::Tlsa& tlsa) {
  return (tlsa.usage == 2 || tlsa.usage == 3) && tlsa.selector <= 1 && tlsa.matching_type <= 2;
}

Status require_dane(SSL* ssl, const std::vector<std::string>& names, const std::vector<dns::Tlsa>& tlsa) {
  if (names.empty()) return Error{"no TLSA base domain"};
  if (SSL_dane_enable(ssl, names.front().c_str()) <= 0) return Error{"OpenSSL: cannot enable DANE"};
  if (auto st = add_names(ssl, names, 1); !st) return st;
  int added = 0;
  for (const auto& t : tlsa) {
    if (!usable_for_smtp(t)) continue;
    // 0: OpenSSL cannot use it (an unknown digest, a malformed key): skipped, as RFC 7671 5 says.
    if (SSL_dane_tlsa_add(ssl, t.usage, t.selector, t.matching_type, t.data.data(), t.data.size()) > 0)
      ++added;
  }
  ERR_clear_error();
  if (added == 0) return Error{"no usable TLSA records"};
  return Ok{};
}

Trust peer_trust(SSL* ssl) {
  if (ssl == nullptr || SSL_get0_peer_certificate(ssl) == nullptr || SSL_get_verify_result(ssl) != X509_V_OK)
    return Trust::kUntrusted;
  if (SSL_get0_dane_authority(ssl, nullptr, nullptr) >= 0 || SSL_get0_peername(ssl) != nullptr)
    return Trust::kVerified;
  return Trust::kTrusted;
}

std::string verify_error(SSL* ssl) {
  if (SSL_get0_peer_certificate(ssl) == nullptr) return "no server certificate";
  long result = SSL_get_verify_result(ssl);
  return result == X509_V_OK ? std::string() : X509_verify_cert_error_string(result);
}

}  // namespace postern::tls

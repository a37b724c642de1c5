// tls/client.hpp: the client side of TLS for outbound SMTP: the trust store, and what a connection must prove
// about its peer: a PKIX chain to the store with a name match (RFC 6125 via OpenSSL's host checks; Postfix's
// smtp_tls_security_level = verify/secure, and MTA-STS, RFC 8461 4.2) or a DANE TLSA match (RFC 7672 3,
// RFC 6698, OpenSSL's DANE API). The handshake itself never fails on verification: the caller asks
// peer_trust() afterwards and decides (Postfix's way), so that may-level sessions still log what they got.
// Security: the peer's certificate chain is untrusted and only reaches OpenSSL; TLSA records are used only
// when the caller found them DNSSEC-validated; the trust store is the administrator's file.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "dns/rdata.hpp"

namespace postern::tls {

// How far the peer of a client connection was authenticated, in Postfix's log words.
enum class Trust {
  kNone,       // no TLS
  kUntrusted,  // "Untrusted": encrypted, the certificate not checked or not valid
  kTrusted,    // "Trusted": the chain leads to the trust store, the name was not checked
  kVerified,   // "Verified": PKIX chain and name matched, or a DANE TLSA record matched
};
// "Untrusted", "Trusted", "Verified"; "none" for kNone.
std::string_view trust_name(Trust trust);

// Prepares a client context: the trust store from `ca_file` (smtp_tls_CAfile; empty: the system store) and
// DANE support (DANE-EE matches skip name checks, RFC 7672 3.2.2). The verify mode stays "none".
Status configure_client_context(SSL_CTX* ctx, const std::string& ca_file);

// Before the handshake: the peer must present a chain to the trust store naming one of `names` (DNS names,
// wildcards only as a whole leftmost label). The PKIX check verify/secure and MTA-STS ask for.
Status require_pkix_name(SSL* ssl, const std::vector<std::string>& names);

// RFC 7672 3.1.3: only DANE-TA(2) and DANE-EE(3) with selector 0/1 and matching type 0/1/2 are usable for
// SMTP.
bool usable_for_smtp(const dns::Tlsa& tlsa);
// Before the handshake: the peer must match one of `tlsa` (all usable_for_smtp); a DANE-TA(2) match also
// needs one of `names` (the TLSA base domain first) in the certificate.
Status require_dane(SSL* ssl, const std::vector<std::string>& names, const std::vector<dns::Tlsa>& tlsa);

// After the handshake: kVerified when what require_* asked for holds (or a chain to the store matched a name
// given), kTrusted for a chain to the store without a name check, kUntrusted otherwise.
Trust peer_trust(SSL* ssl);
// For logs and deferral reasons: why the peer was not verified ("certificate has expired", "No matching
// DANE TLSA records"); empty when it was.
std::string verify_error(SSL* ssl);

}  // namespace postern::tls

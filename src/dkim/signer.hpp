// dkim/signer.hpp: DKIM signing (RFC 6376 3.5 tags, 3.7 hashes, 5.4 which fields) with rsa-sha256 or
// ed25519-sha256 (RFC 8463), relaxed/relaxed, of a message as Postern stores it (LF line ends; the signature
// covers the CR LF form that goes on the wire, see dkim/canon.hpp).
// Security: the message is untrusted (it only reaches the canonicalization and the hashes); the private key
// is the administrator's and is never logged.
#pragma once

#include <openssl/evp.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace postern::dkim {

// A signing key: RSA (at least 1024 bits, RFC 8301; keygen makes 2048) or Ed25519.
struct Key {
  std::string domain;    // d=, lower case
  std::string selector;  // s=
  std::shared_ptr<EVP_PKEY> pkey;
};

// "rsa" or "ed25519": the k= of the key record, and the a= algorithm's prefix.
std::string_view key_type(EVP_PKEY* pkey);

// The DKIM-Signature field for `message` (LF line ends; the field ends with LF and is folded to lines of at
// most 78 characters) to put on top of it. t= is `now`; no l= (a signature that only covers part of the
// body lets anyone append to it) and no x= (a receiver checks a message once, when it arrives).
// Signed fields, each as many times as the message has it (RFC 6376 5.4.2: the last instance first), then
// From once more so that a From field added later breaks the signature: the set RFC 6376 5.4.1 recommends,
// like OpenDKIM's default (From, Sender, Reply-To, Subject, Date, Message-ID, To, Cc, MIME-Version,
// Content-*, Resent-*, In-Reply-To, References, List-*). The message must have a From field.
Result<std::string> sign(std::string_view message, const Key& key, std::chrono::system_clock::time_point now);

}  // namespace postern::dkim

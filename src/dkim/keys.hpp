// dkim/keys.hpp: the DKIM signing keys of this server, one directory per domain: DIR/dkim/<domain>/
// <selector>.key (PEM, PKCS#8, mode 0600; the directories 0755 so that the server can list them after it
// dropped root, the keys themselves being read while root or through the privileged helper, as TLS keys).
// The newest key file of a domain signs; `postern dkim keygen` makes them, with the DNS record to publish
// (RFC 6376 3.6.1; RFC 8463 3 for Ed25519: the raw public key in p=).
// Which mail is signed: mail from a trusted origin (SASL-authenticated, mynetworks, local submission) whose
// From field names one of these domains (OpenDKIM's SigningTable by From domain: the domain receivers'
// DMARC checks align with), when it goes into the outbound queue.
// Security: key files are the administrator's; a file that fails to load is logged and skipped. The From
// field is untrusted: it only selects among our keys.
#pragma once

#include <time.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "dkim/signer.hpp"
#include "queue/envelope.hpp"
#include "tls/server.hpp"

namespace postern::dkim {

// DIR/dkim
std::string key_directory(const std::string& config_dir);
// Whether `name` may be a domain or selector in the key directory: DNS labels of letters, digits, '-' and
// '_', lower case, separated by single dots.
bool valid_name(std::string_view name);

struct KeyFile {
  std::string domain;
  std::string selector;
  std::string path;
  timespec mtime{};
};
// Every DIR/dkim/<domain>/<selector>.key with valid names, the newest of each domain first.
std::vector<KeyFile> key_files(const std::string& config_dir);

enum class KeyType { kRsa, kEd25519 };
// A new key: RSA 2048 bits or Ed25519.
Result<std::shared_ptr<EVP_PKEY>> generate_key(KeyType type);
// The private key as PEM (PKCS#8).
std::string private_key_pem(EVP_PKEY* pkey);
// A PEM private key that may sign: RSA of at least 1024 bits, or Ed25519.
Result<std::shared_ptr<EVP_PKEY>> parse_private_key(std::string_view pem);
// The key record's text: "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" or "...k=ed25519; p=<raw key>".
std::string key_record(EVP_PKEY* pkey);

class KeyTable {
 public:
  // The newest key that loads of each domain under DIR/dkim, read with `read`; a key file that does not
  // load is logged as an error naming it.
  static std::shared_ptr<const KeyTable> load(const std::string& config_dir, const tls::FileReader& read);

  const Key* find(std::string_view domain) const;
  // The DKIM-Signature field (LF line ends) to put on top of `content` (the message as stored) when it comes
  // from a trusted origin and its one From field has addresses of one domain that has a key; else empty.
  // Logs what it did.
  std::string sign(const queue::Envelope& env, std::string_view content) const;

 private:
  std::map<std::string, Key, std::less<>> keys_;
};

}  // namespace postern::dkim

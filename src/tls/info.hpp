// tls/info.hpp: what a protocol session knows of its connection's TLS, without OpenSSL: whether it is on,
// what was negotiated (for Received: headers and logs) and the channel binding SCRAM-*-PLUS needs.
#pragma once

#include <string>

namespace postern::tls {

struct Info {
  bool active = false;
  std::string protocol;  // "TLSv1.3"
  std::string cipher;    // "TLS_AES_256_GCM_SHA384"
  int bits = 0;          // the cipher's strength
  std::string exporter;  // tls-exporter channel binding (RFC 9266): 32 bytes; empty when not available
};

}  // namespace postern::tls

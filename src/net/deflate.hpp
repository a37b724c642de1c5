// net/deflate.hpp: COMPRESS=DEFLATE (RFC 4978): raw deflate (no zlib header) in both directions, each write
// ended with a sync flush so that every response reaches the client at once.
// Security: inflating untrusted input: output is produced in bounded chunks by the caller's reads; a corrupt
// stream is an error (the connection is closed).
#pragma once

#include <zlib.h>

#include <string>
#include <string_view>

namespace postern::net {

class Deflate {
 public:
  Deflate();
  ~Deflate();
  Deflate(const Deflate&) = delete;
  Deflate& operator=(const Deflate&) = delete;

  // Compresses `plain` (a whole write) into `out` (replaced), ending with Z_SYNC_FLUSH.
  bool compress(std::string_view plain, std::string& out);
  // Decompresses `data` as received, appending to `out`. False on a corrupt stream.
  bool decompress(std::string_view data, std::string& out);

 private:
  z_stream in_{};
  z_stream out_{};
  bool ok_ = false;
};

}  // namespace postern::net

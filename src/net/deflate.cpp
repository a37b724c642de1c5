#include "net/deflate.hpp"

namespace postern::net {

Deflate::Deflate() {
  ok_ = deflateInit2(&out_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK &&
        inflateInit2(&in_, -15) == Z_OK;
}

Deflate::~Deflate() {
  deflateEnd(&out_);
  inflateEnd(&in_);
}

bool Deflate::compress(std::string_view plain, std::string& out) {
  out.clear();
  if (!ok_) return false;
  out_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  out_.avail_in = static_cast<uInt>(plain.size());
  char chunk[16384];
  do {
    out_.next_out = reinterpret_cast<Bytef*>(chunk);
    out_.avail_out = sizeof chunk;
    if (deflate(&out_, Z_SYNC_FLUSH) == Z_STREAM_ERROR) return false;
    out.append(chunk, sizeof chunk - out_.avail_out);
  } while (out_.avail_out == 0);
  return true;
}

bool Deflate::decompress(std::string_view data, std::string& out) {
  if (!ok_) return false;
  in_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  in_.avail_in = static_cast<uInt>(data.size());
  char chunk[16384];
  while (in_.avail_in > 0) {
    in_.next_out = reinterpret_cast<Bytef*>(chunk);
    in_.avail_out = sizeof chunk;
    int r = inflate(&in_, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) return false;
    out.append(chunk, sizeof chunk - in_.avail_out);
    if (r == Z_STREAM_END || (r == Z_BUF_ERROR && in_.avail_out != 0)) break;
  }
  return true;
}

}  // namespace postern::net

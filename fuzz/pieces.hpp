// fuzz/pieces.hpp: helpers shared by the fuzz targets: cutting an input into pieces as TCP segments would
// arrive it (deterministic: the sizes derive from a hash of the input, so a crash file reproduces alone),
// and the check that stops the fuzzer when a property fails.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

// Fails the run: libFuzzer reports it as a crash and saves the input.
#define POSTERN_FUZZ_CHECK(cond)   \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

namespace postern::fuzz {

inline uint64_t hash_input(std::string_view input) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : input) h = (h ^ c) * 1099511628211ULL;
  return h | 1;
}

// `input` cut into pieces of 1 to 64 bytes (a quarter of them single bytes).
inline std::vector<std::string_view> split_pieces(std::string_view input) {
  uint64_t h = hash_input(input);
  std::vector<std::string_view> pieces;
  size_t pos = 0;
  while (pos < input.size()) {
    h ^= h << 13;
    h ^= h >> 7;
    h ^= h << 17;
    size_t n = (h & 3) == 0 ? 1 : 1 + (h >> 8) % 64;
    n = std::min(n, input.size() - pos);
    pieces.push_back(input.substr(pos, n));
    pos += n;
  }
  return pieces;
}

// `input` cut after every `c` (after every CR: segments that end between CR and LF).
inline std::vector<std::string_view> split_after(std::string_view input, char c) {
  std::vector<std::string_view> pieces;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t end = input.find(c, pos);
    end = end == std::string_view::npos ? input.size() : end + 1;
    pieces.push_back(input.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

}  // namespace postern::fuzz

// fuzz/mta_sts_policy.cpp: libFuzzer target for MTA-STS (delivery/mta_sts_policy.hpp). The input as an HTTP
// response: read whole and in pieces, the reader ends the same way with the same status and body, holds at
// most 64 KiB of body; a body read is parsed as a policy, whose max_age is at most kMaxStsAge, at most 100
// lower-case mx patterns, each of which (without "*.") matches itself. The input's lines as TXT records: an
// id found is 1 to 32 letters and digits.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/mta_sts_policy.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"

int postern_fuzz_mta_sts_policy(const uint8_t* data, size_t size) {
  using namespace postern::delivery;
  using State = HttpResponseReader::State;
  std::string_view input(reinterpret_cast<const char*>(data), size);

  HttpResponseReader whole, pieces;
  if (whole.feed(input) == State::kMore) whole.end();
  for (std::string_view piece : postern::fuzz::split_pieces(input)) pieces.feed(piece);
  if (pieces.state() == State::kMore) pieces.end();
  POSTERN_FUZZ_CHECK(whole.state() == pieces.state() && whole.state() != State::kMore);
  POSTERN_FUZZ_CHECK(whole.status() == pieces.status() && whole.body() == pieces.body());
  POSTERN_FUZZ_CHECK(whole.body().size() <= kMaxPolicyBody);

  if (auto policy =
          parse_sts_policy(whole.state() == State::kDone ? std::string_view(whole.body()) : input)) {
    POSTERN_FUZZ_CHECK(policy->max_age <= kMaxStsAge && policy->mx.size() <= kMaxPolicyMx);
    POSTERN_FUZZ_CHECK(!policy->mx.empty() || policy->mode == StsMode::kNone);
    for (const auto& mx : policy->mx) {
      for (char c : mx) POSTERN_FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
      std::string host = mx.starts_with("*.") ? "x" + mx.substr(1) : mx;
      POSTERN_FUZZ_CHECK(sts_mx_matches(*policy, host));
    }
  }

  std::vector<std::string> records;
  size_t start = 0;
  for (size_t i = 0; i <= input.size(); ++i) {
    if (i == input.size() || input[i] == '\n') {
      records.emplace_back(input.substr(start, i - start));
      start = i + 1;
    }
  }
  if (auto id = sts_record_id(records)) {
    POSTERN_FUZZ_CHECK(!id->empty() && id->size() <= 32);
    for (char c : *id)
      POSTERN_FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
  }
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_mta_sts_policy(data, size);
}
#endif

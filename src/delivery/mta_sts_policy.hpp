// delivery/mta_sts_policy.hpp: the pure parts of MTA-STS (RFC 8461): the _mta-sts TXT record (3.1), the
// policy file (3.2), MX pattern matching (4.1), and the HTTP/1.1 response reader (RFC 9112: status line,
// header fields, Content-Length, chunked or close-delimited body) that the policy fetch (3.3, in
// delivery/mta_sts.cpp) feeds. No I/O, no Asio: built into postern_proto for the fuzzer.
// Security: untrusted input from DNS and from the policy host: the reader holds at most kMaxHttpHeader bytes
// of header and kMaxPolicyBody of body (a larger response is an error, never buffered); the policy parser
// takes at most kMaxPolicyBody bytes and kMaxPolicyMx patterns. Fuzzed by fuzz/mta_sts_policy.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace postern::delivery {

constexpr size_t kMaxPolicyBody = 64 * 1024;  // RFC 8461 3.3: senders may limit the policy to 64 KiB
constexpr size_t kMaxHttpHeader = 16 * 1024;  // status line and header fields together
constexpr size_t kMaxPolicyMx = 100;          // mx patterns in one policy
constexpr uint64_t kMaxStsAge = 31557600;     // RFC 8461 3.2: max_age is at most about a year

enum class StsMode { kEnforce, kTesting, kNone };
std::string_view sts_mode_name(StsMode mode);  // "enforce", "testing", "none"

struct StsPolicy {
  StsMode mode = StsMode::kNone;
  std::vector<std::string> mx;  // lower case, "mx.example.com" or "*.example.com"
  uint64_t max_age = 0;         // seconds, at most kMaxStsAge (a larger value is cut to it)
};

// RFC 8461 3.1: the policy id of a domain from all of its _mta-sts TXT records. Records that do not begin
// with "v=STSv1;" are ignored; unless exactly one remains and it is well-formed with an id, there is no
// policy (nullopt).
std::optional<std::string> sts_record_id(const std::vector<std::string>& records);

// RFC 8461 3.2: the policy file (LF or CRLF lines). The first of a repeated field counts (mx: every one);
// unknown fields are ignored. An error says what is wrong.
Result<StsPolicy> parse_sts_policy(std::string_view text);

// RFC 8461 4.1: whether MX host `host` (any case, an optional trailing dot) matches one of the policy's
// patterns; "*.example.com" matches exactly one more label on the left.
bool sts_mx_matches(const StsPolicy& policy, std::string_view host);

// RFC 8461 4 and 5: what the policy of `domain` asks of its MX host `host`.
struct StsCheck {
  bool refuse = false;        // enforce: the host is not in the policy and is not used (4.7.5, `problem`)
  bool require_pkix = false;  // enforce: TLS, with a PKIX-valid certificate naming the host
  bool report = false;        // testing: a connection without a verified certificate is logged, not refused
  std::string problem;        // for the log: the host is not in the policy; empty when it is
};
StsCheck sts_check(const StsPolicy& policy, std::string_view domain, std::string_view host);

// A domain fit for MTA-STS: lower-case ASCII letters, digits and hyphens in dot-separated labels (no IDN
// U-labels, no address literal). The cache also takes it as a file name.
bool sts_domain_ok(std::string_view domain);

// An HTTP/1.1 response read as its bytes arrive; bounded as said above.
class HttpResponseReader {
 public:
  enum class State { kMore, kDone, kFailed };

  State feed(std::string_view bytes);
  // The server closed the connection: the end of a body without length, else an error when not done.
  State end();

  State state() const { return state_; }
  int status() const { return status_; }
  const std::string& content_type() const { return content_type_; }  // as sent, trimmed
  const std::string& body() const { return body_; }
  const std::string& error() const { return error_; }

 private:
  enum class Phase {
    kStatus,
    kHeaders,
    kLengthBody,
    kCloseBody,
    kChunkSize,
    kChunkData,
    kChunkEnd,
    kTrailer
  };
  State fail(std::string why);
  State step();
  // The next line of buf_ (without CR LF or LF), consumed; nullopt when it is not complete yet.
  std::optional<std::string> take_line();
  State header_line(std::string_view line);
  State start_body();

  Phase phase_ = Phase::kStatus;
  State state_ = State::kMore;
  std::string buf_;          // bytes not consumed yet
  size_t header_bytes_ = 0;  // of status line and header fields so far
  int status_ = 0;
  std::string content_type_;
  std::optional<uint64_t> length_;
  bool chunked_ = false;
  uint64_t chunk_left_ = 0;
  std::string body_;
  std::string error_;
};

}  // namespace postern::delivery

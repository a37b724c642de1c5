// delivery/mta_sts_policy.cpp: MTA-STS records, policies and the HTTP response reader (see the header).
#include "delivery/mta_sts_policy.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "base/strings.hpp"

namespace postern::delivery {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string_view trim_wsp(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// sts-ext-name and sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
bool ext_name_ok(std::string_view name) {
  if (name.empty() || name.size() > 32 || !is_alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '-' || c == '.'; });
}

// sts-ext-value: 1*(%x21-3A / %x3C / %x3E-7E).
bool ext_value_ok(std::string_view value) {
  return !value.empty() && std::all_of(value.begin(), value.end(),
                                       [](char c) { return c >= 0x21 && c <= 0x7e && c != ';' && c != '='; });
}

// The record after "v=STSv1": its id, or nullopt when a field is malformed or there is no id.
std::optional<std::string> record_id(std::string_view fields) {
  std::optional<std::string> id;
  std::vector<std::string_view> parts = split(fields, ';');
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view field = trim_wsp(parts[i]);
    // "v=STSv1;" is split before its ";" (an empty first piece); a trailing ";" ends the record.
    if (field.empty() && i == 0) continue;
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view name = field.substr(0, eq), value = field.substr(eq + 1);
    if (name == "id") {
      if (value.empty() || value.size() > 32 || !std::all_of(value.begin(), value.end(), is_alnum))
        return std::nullopt;
      if (!id) id = std::string(value);
    } else if (!ext_name_ok(name) || !ext_value_ok(value)) {
      return std::nullopt;
    }
  }
  return id;
}

}  // namespace

std::string_view sts_mode_name(StsMode mode) {
  switch (mode) {
    case StsMode::kEnforce:
      return "enforce";
    case StsMode::kTesting:
      return "testing";
    case StsMode::kNone:
      break;
  }
  return "none";
}

std::optional<std::string> sts_record_id(const std::vector<std::string>& records) {
  constexpr std::string_view kVersion = "v=STSv1";
  const std::string* found = nullptr;
  for (const auto& r : records) {
    if (!std::string_view(r).starts_with("v=STSv1;")) continue;
    if (found) return std::nullopt;
    found = &r;
  }
  if (!found) return std::nullopt;
  return record_id(std::string_view(*found).substr(kVersion.size()));
}

StsCheck sts_check(const StsPolicy& policy, std::string_view domain, std::string_view host) {
  StsCheck c;
  if (policy.mode == StsMode::kNone) return c;
  bool enforce = policy.mode == StsMode::kEnforce;
  c.require_pkix = enforce;
  c.report = !enforce;
  if (!sts_mx_matches(policy, host)) {
    c.refuse = enforce;
    c.problem = fmt::format("{} is not an MX host of the MTA-STS policy of {}{}", host, domain,
                            enforce ? "" : " (testing mode: used all the same)");
  }
  return c;
}

bool sts_domain_ok(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  for (std::string_view label : split(domain, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return domain.back() != '.';
}

Result<StsPolicy> parse_sts_policy(std::string_view text) {
  if (text.size() > kMaxPolicyBody) return Error{"the policy is larger than 64 KiB"};
  StsPolicy p;
  bool version = false, mode = false, max_age = false;
  for (std::string_view line : split_lines(text)) {
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !ext_name_ok(line.substr(0, colon)))
      return Error{fmt::format("not a \"name: value\" line: \"{}\"", printable(line, 80))};
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim_wsp(line.substr(colon + 1));
    if (name == "version" && !version) {
      if (value != "STSv1") return Error{fmt::format("version \"{}\" is not STSv1", printable(value, 40))};
      version = true;
    } else if (name == "mode" && !mode) {
      if (value == "enforce") {
        p.mode = StsMode::kEnforce;
      } else if (value == "testing") {
        p.mode = StsMode::kTesting;
      } else if (value == "none") {
        p.mode = StsMode::kNone;
      } else {
        return Error{fmt::format("mode \"{}\" is not enforce, testing or none", printable(value, 40))};
      }
      mode = true;
    } else if (name == "max_age" && !max_age) {
      unsigned long long age = 0;
      if (value.empty() || value.size() > 10 || !parse_u64(value, age))
        return Error{fmt::format("max_age \"{}\" is not a number of seconds", printable(value, 40))};
      p.max_age = std::min<uint64_t>(age, kMaxStsAge);
      max_age = true;
    } else if (name == "mx") {
      std::string pattern = to_lower(value);
      std::string_view domain = pattern;
      if (domain.starts_with("*.")) domain.remove_prefix(2);
      if (!sts_domain_ok(domain))
        return Error{fmt::format("mx \"{}\" is not a host name", printable(value, 80))};
      if (p.mx.size() == kMaxPolicyMx) return Error{"more than 100 mx patterns"};
      p.mx.push_back(std::move(pattern));
    }
  }
  if (!version) return Error{"no version field"};
  if (!mode) return Error{"no mode field"};
  if (!max_age) return Error{"no max_age field"};
  if (p.mx.empty() && p.mode != StsMode::kNone) return Error{"no mx field"};
  return p;
}

bool sts_mx_matches(const StsPolicy& policy, std::string_view host) {
  std::string h = to_lower(host);
  if (!h.empty() && h.back() == '.') h.pop_back();
  for (const auto& pattern : policy.mx) {
    if (pattern.starts_with("*.")) {
      // One label, then the rest: "*.example.com" takes "mx.example.com", not "a.b.example.com".
      size_t dot = h.find('.');
      if (dot != 0 && dot != std::string::npos && std::string_view(h).substr(dot) == pattern.substr(1))
        return true;
    } else if (h == pattern) {
      return true;
    }
  }
  return false;
}

HttpResponseReader::State HttpResponseReader::fail(std::string why) {
  error_ = std::move(why);
  body_.clear();
  return state_ = State::kFailed;
}

std::optional<std::string> HttpResponseReader::take_line() {
  size_t lf = buf_.find('\n');
  if (lf == std::string::npos) return std::nullopt;
  std::string line = buf_.substr(0, lf);
  buf_.erase(0, lf + 1);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

HttpResponseReader::State HttpResponseReader::feed(std::string_view bytes) {
  if (state_ != State::kMore) return state_;
  buf_.append(bytes);
  return step();
}

HttpResponseReader::State HttpResponseReader::end() {
  if (state_ != State::kMore) return state_;
  if (phase_ == Phase::kCloseBody) return state_ = State::kDone;
  return fail("the server closed the connection before the end of the response");
}

HttpResponseReader::State HttpResponseReader::header_line(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') return fail("a folded header field");
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return fail("a header line without a field name");
  std::string_view name = line.substr(0, colon);
  std::string_view value = trim(line.substr(colon + 1));
  if (iequals(name, "content-type")) {
    content_type_ = std::string(value);
  } else if (iequals(name, "content-length")) {
    unsigned long long n = 0;
    if (!parse_u64(value, n) || (length_ && *length_ != n)) return fail("a bad Content-Length");
    length_ = n;
  } else if (iequals(name, "transfer-encoding")) {
    if (!iequals(value, "chunked")) return fail(fmt::format("Transfer-Encoding {}", printable(value, 40)));
    chunked_ = true;
  }
  return state_;
}

HttpResponseReader::State HttpResponseReader::start_body() {
  if (status_ >= 100 && status_ < 200) {  // an interim response: the real one follows
    phase_ = Phase::kStatus;
    content_type_.clear();
    length_.reset();
    chunked_ = false;
    return state_;
  }
  // The body of anything but 200 is of no use to the policy fetch: not read.
  if (status_ != 200) return state_ = State::kDone;
  if (chunked_) {
    phase_ = Phase::kChunkSize;
  } else if (length_) {
    if (*length_ > kMaxPolicyBody) return fail("the policy is larger than 64 KiB");
    phase_ = Phase::kLengthBody;
    if (*length_ == 0) return state_ = State::kDone;
  } else {
    phase_ = Phase::kCloseBody;
  }
  return state_;
}

HttpResponseReader::State HttpResponseReader::step() {
  while (state_ == State::kMore) {
    switch (phase_) {
      case Phase::kLengthBody: {
        size_t n = std::min<uint64_t>(buf_.size(), *length_ - body_.size());
        body_.append(buf_, 0, n);
        buf_.erase(0, n);
        if (body_.size() == *length_) return state_ = State::kDone;
        return state_;
      }
      case Phase::kCloseBody:
        if (body_.size() + buf_.size() > kMaxPolicyBody) return fail("the policy is larger than 64 KiB");
        body_ += buf_;
        buf_.clear();
        return state_;
      case Phase::kChunkData: {
        size_t n = std::min<uint64_t>(buf_.size(), chunk_left_);
        body_.append(buf_, 0, n);
        buf_.erase(0, n);
        chunk_left_ -= n;
        if (chunk_left_ > 0) return state_;
        phase_ = Phase::kChunkEnd;
        continue;
      }
      default:
        break;
    }
    // The line-oriented phases.
    bool in_header = phase_ == Phase::kStatus || phase_ == Phase::kHeaders || phase_ == Phase::kTrailer;
    size_t lf = buf_.find('\n');
    size_t used = lf == std::string::npos ? buf_.size() : lf + 1;
    if (in_header ? header_bytes_ + used > kMaxHttpHeader : used > 1024)
      return fail(in_header ? "the response header is too large" : "a chunk size line is too long");
    auto line = take_line();
    if (!line) return state_;
    if (in_header) header_bytes_ += used;
    switch (phase_) {
      case Phase::kStatus: {
        // "HTTP/1.1 200 OK"
        unsigned long long code = 0;
        if (line->size() < 12 || !line->starts_with("HTTP/1.") || (*line)[8] != ' ' ||
            !parse_u64(std::string_view(*line).substr(9, 3), code) ||
            (line->size() > 12 && (*line)[12] != ' '))
          return fail(fmt::format("not an HTTP/1 status line: \"{}\"", printable(*line, 80)));
        status_ = static_cast<int>(code);
        phase_ = Phase::kHeaders;
        break;
      }
      case Phase::kHeaders:
        if (line->empty()) {
          start_body();
        } else {
          header_line(*line);
        }
        break;
      case Phase::kChunkSize: {
        std::string_view size = trim_wsp(std::string_view(*line).substr(0, line->find(';')));
        uint64_t n = 0;
        if (size.empty() || size.size() > 8) return fail("a bad chunk size");
        for (char c : size) {
          int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
          if (d < 0) return fail("a bad chunk size");
          n = n * 16 + static_cast<uint64_t>(d);
        }
        if (n == 0) {
          phase_ = Phase::kTrailer;
        } else if (body_.size() + n > kMaxPolicyBody) {
          return fail("the policy is larger than 64 KiB");
        } else {
          chunk_left_ = n;
          phase_ = Phase::kChunkData;
        }
        break;
      }
      case Phase::kChunkEnd:
        if (!line->empty()) return fail("no line end after a chunk");
        phase_ = Phase::kChunkSize;
        break;
      case Phase::kTrailer:
        if (line->empty()) return state_ = State::kDone;
        break;
      default:
        break;
    }
  }
  return state_;
}

}  // namespace postern::delivery

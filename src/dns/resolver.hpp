// dns/resolver.hpp: the DNS resolver interface of outbound delivery and the SMTP restrictions (RFC 1035,
// RFC 5321 5.1 MX then A/AAAA, RFC 7505 null MX, RFC 6698 TLSA, RFC 4033 "secure" answers), and
// StaticResolver, an in-memory resolver for unit tests of code that looks names up.
// Lookups are Asio awaitables: they complete on the awaiting coroutine's own executor (its strand) and never
// hang: an implementation ends a lookup that gets no answer in time as Status::kTempFail. Every answer says
// whether it was DNSSEC-validated; only lookups asked with `validate` are (DANE), so that unsigned zones
// served on loopback in tests resolve.
// Security: answers are untrusted: record data is decoded by dns/rdata.cpp (unit-tested), malformed records
// are skipped, and an answer whose records are all malformed is a temporary failure.
#pragma once

// Standard headers before Asio's: its config detects aligned_alloc from libstdc++'s <bits/c++config.h>, and a
// translation unit that reaches Asio first allocates handler memory differently (an ODR violation that
// AddressSanitizer reports as alloc-dealloc-mismatch).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>

#include "dns/rdata.hpp"

namespace postern::dns {

// An answer: a status, the records (when kFound), whether it was validated, and words for the log.
template <class T>
struct Answer {
  Status status = Status::kTempFail;
  bool secure = false;  // DNSSEC-validated (the records, or the non-existence they state)
  std::vector<T> records;
  std::string why;  // for a failure: what failed, for logs and replies
};

// The records of one type as the server sent them, before decoding.
struct RawAnswer {
  Status status = Status::kTempFail;
  bool secure = false;
  std::vector<std::string> rdata;
  std::string why;
};

// RFC 7505: the domain's only MX is "0 ." (Mx::host empty): it accepts no mail.
bool is_null_mx(const Answer<Mx>& answer);

// Whether a domain can receive mail as DNS tells (Postfix's reject_unknown_{recipient,sender}_domain): an MX
// record, or else an A or AAAA record.
enum class MailDomain { kExists, kNotFound, kNullMx, kTempFail };

class Resolver;
// MX first: NXDOMAIN there is kNotFound, a temporary (or DNSSEC) failure kTempFail without asking further (a
// timeout costs one query's time, not three); NODATA (no MX records) goes on to A and AAAA.
asio::awaitable<MailDomain> mail_domain(Resolver& resolver, std::string domain);

class Resolver {
 public:
  virtual ~Resolver() = default;

  // MX records of `domain` in the order received (the caller sorts by preference and shuffles equals).
  asio::awaitable<Answer<Mx>> mx(std::string domain, bool validate = false);
  // The A and/or AAAA records of `host` (inet_protocols), A first. Found when either has records; a
  // temporary failure of one (and no records from the other) is a temporary failure; NXDOMAIN only when
  // every type asked says so.
  asio::awaitable<Answer<asio::ip::address>> addresses(std::string host, bool want_v4, bool want_v6,
                                                       bool validate = false);
  // TXT records, each record's character-strings concatenated.
  asio::awaitable<Answer<std::string>> txt(std::string name, bool validate = false);
  asio::awaitable<Answer<Tlsa>> tlsa(std::string name, bool validate = false);

  // One query: the records of `type` at `name` ("example.org", no trailing dot needed). `validate`: check
  // DNSSEC against the root trust anchor (a bogus answer is Status::kBogus).
  virtual asio::awaitable<RawAnswer> query(std::string name, Type type, bool validate) = 0;
};

// Records kept in memory; names not added are NXDOMAIN, a name added without records of a type is NODATA for
// it. For unit tests: the lookups complete at once on the caller's executor.
class StaticResolver : public Resolver {
 public:
  void add_mx(std::string_view name, uint16_t preference, std::string_view host);
  void add_address(std::string_view name, std::string_view ip);  // A or AAAA, as the text says
  void add_txt(std::string_view name, std::string_view text);
  void add_tlsa(std::string_view name, const Tlsa& tlsa);
  // Every query of `name` ends with `status` (kTempFail for a SERVFAIL or timeout, kNxDomain, kBogus).
  void set_status(std::string_view name, Status status);
  // Answers for `name` are DNSSEC-validated (when asked with `validate`).
  void set_secure(std::string_view name);
  // The queries made so far, as "name/TYPE-NUMBER" ("example.org/15").
  const std::vector<std::string>& queries() const { return queries_; }

  asio::awaitable<RawAnswer> query(std::string name, Type type, bool validate) override;

 private:
  struct Name {
    std::map<Type, std::vector<std::string>> rdata;
    std::optional<Status> status;
    bool secure = false;
  };
  Name& entry(std::string_view name);

  std::map<std::string, Name> names_;
  std::vector<std::string> queries_;
};

}  // namespace postern::dns

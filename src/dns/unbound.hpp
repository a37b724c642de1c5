// dns/unbound.hpp: the Resolver on libunbound, asynchronous (RFC 1035 queries forwarded to the configured
// servers; RFC 4033-4035 validation only in the validating context, against the root trust anchor).
// Security: see unbound.cpp; answers are parsed by libunbound, their record data by dns/rdata.cpp.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>  // after a standard header: see resolver.hpp

#include "base/result.hpp"
#include "dns/resolver.hpp"

namespace postern::dns {

struct UnboundOptions {
  // dns_servers: "address", "address:port" or "[v6]:port"; empty: the servers of /etc/resolv.conf.
  std::vector<std::string> servers;
  // A query without an answer by then ends as Status::kTempFail.
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
  // The DNSSEC root trust anchor of the validating context (Debian's dns-root-data).
  std::string trust_anchor = "/usr/share/dns/root.key";
};

// "192.0.2.1", "192.0.2.1:53", "[2001:db8::1]:5353", "2001:db8::1" as libunbound's "address@port".
Result<std::string> forwarder(std::string_view server);

// Safe to use from several threads; lookups complete on each awaiting coroutine's executor. The resolver must
// outlive the lookups, and is destroyed only once its io_context no longer runs (serve() keeps it for as long
// as the io_context runs). An idle resolver leaves the io_context no work.
class UnboundResolver final : public Resolver {
 public:
  // The plain (non-validating) context is made here, so that a bad dns_servers fails at start; the validating
  // one at the first lookup that asks for validation.
  static Result<std::unique_ptr<UnboundResolver>> create(asio::io_context& io, UnboundOptions options);
  ~UnboundResolver() override;

  asio::awaitable<RawAnswer> query(std::string name, Type type, bool validate) override;

  class Context;  // one libunbound context (unbound.cpp)

 private:
  UnboundResolver(asio::io_context& io, UnboundOptions options);
  static Result<std::unique_ptr<Context>> make_context(asio::io_context& io, const UnboundOptions& options,
                                                       bool validate);

  asio::io_context& io_;
  UnboundOptions options_;
  std::unique_ptr<Context> plain_;
  std::mutex mutex_;  // guards validating_ while it is being made
  std::unique_ptr<Context> validating_;
};

}  // namespace postern::dns

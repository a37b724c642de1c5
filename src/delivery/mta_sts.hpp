// delivery/mta_sts.hpp: SMTP MTA Strict Transport Security (RFC 8461) for outbound delivery: which policy
// is in force for a recipient domain. The _mta-sts TXT record (3.1) names the policy id; the policy is
// fetched over HTTPS from https://mta-sts.<domain>/.well-known/mta-sts.txt (3.3: PKIX-verified certificate
// for that name against smtp_tls_CAfile or the system store, checked by tls/client.hpp; no redirects, 200 and
// text/plain only, at most 64 KiB, within smtp_mta_sts_timeout for the whole fetch) with HTTP/1.1 written
// here over Asio + OpenSSL; it is cached on disk (5.1) under queue_directory/mta-sts/<domain> with its id and
// expiry, refetched when the TXT id changes, and a cached unexpired policy stays in force when DNS or the
// fetch fails. How the policy is applied to the MX hosts (4, 5) is delivery/remote.cpp's. Security: the TXT
// record, the HTTP response and the cache file are untrusted: all go through the bounded parsers of
// delivery/mta_sts_policy.hpp; the domain is checked (sts_domain_ok) before it names a file or a host; a
// cache file that does not parse is ignored. A policy can only make delivery stricter.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

// After a standard header: see dns/resolver.hpp (Asio's allocator config).
#include <asio/awaitable.hpp>

#include "base/result.hpp"
#include "config/config.hpp"
#include "delivery/mta_sts_policy.hpp"
#include "dns/resolver.hpp"

namespace asio::ssl {
class context;
}

namespace postern::delivery {

// A policy as the cache keeps it.
struct CachedStsPolicy {
  std::string id;       // the TXT record's id it was fetched under
  int64_t expires = 0;  // Unix time: fetch time + max_age
  StsPolicy policy;
};

// The on-disk cache: one file per domain, "id: ID\nexpires: UNIX-TIME\n\n" and the policy as fetched,
// replaced atomically. The directory is made (mode 0700) at the first store.
class StsCache {
 public:
  explicit StsCache(std::string directory) : directory_(std::move(directory)) {}
  // The domain's policy unless missing, unreadable or expired at `now`.
  std::optional<CachedStsPolicy> load(const std::string& domain, int64_t now) const;
  Status store(const std::string& domain, const std::string& id, std::string_view policy_text,
               int64_t expires) const;

 private:
  std::string directory_;
};

// The policy file of `domain` over HTTPS (RFC 8461 3.3), its addresses from `resolver` (inet_protocols as
// want_v4/want_v6), the whole fetch within `timeout`: the body, or why it failed. `port`: 443 but in tests.
asio::awaitable<Result<std::string>> fetch_sts_policy(dns::Resolver& resolver, asio::ssl::context& tls,
                                                      std::string domain, bool want_v4, bool want_v6,
                                                      std::chrono::seconds timeout, uint16_t port = 443);

class MtaSts {
 public:
  // Fetches the policy text of a domain: fetch_sts_policy, or a stand-in in unit tests.
  using Fetcher = std::function<asio::awaitable<Result<std::string>>(dns::Resolver&, std::string)>;
  using Clock = std::function<int64_t()>;  // Unix time

  MtaSts(std::string cache_directory, Fetcher fetcher, Clock clock);
  // smtp_mta_sts (nullptr when "no"), smtp_mta_sts_timeout, queue_directory; `tls`: the client context of
  // outbound delivery (tls::configure_client_context: the trust store of smtp_tls_CAfile).
  static std::shared_ptr<MtaSts> from_config(const config::Config& cfg,
                                             std::shared_ptr<asio::ssl::context> tls, bool want_v4,
                                             bool want_v6);

  // The policy in force for `domain` (RFC 8461 5.1), mode none included; nullopt: the domain has none (or
  // it is not a plain ASCII domain name). Never fails: DNS and fetch errors fall back to the cache.
  asio::awaitable<std::optional<StsPolicy>> policy(dns::Resolver& resolver, std::string domain);

 private:
  StsCache cache_;
  Fetcher fetcher_;
  Clock clock_;
};

}  // namespace postern::delivery

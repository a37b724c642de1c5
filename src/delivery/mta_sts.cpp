// delivery/mta_sts.cpp: MTA-STS policy discovery, fetch and cache (see mta_sts.hpp).
#include "delivery/mta_sts.hpp"

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "tls/client.hpp"

namespace postern::delivery {
namespace {

using asio::ip::tcp;
constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr int kMaxAddresses = 4;  // addresses of mta-sts.<domain> tried

// "text/plain" or "text/plain; charset=utf-8", any case.
bool is_text_plain(std::string_view content_type) {
  return iequals(trim(content_type.substr(0, content_type.find(';'))), "text/plain");
}

using TlsStream = asio::ssl::stream<tcp::socket>;

// One HTTPS GET of the policy over `stream` (connected); the deadline closes the socket when it expires.
asio::awaitable<Result<std::string>> get_policy(TlsStream& stream, const std::string& host) {
  SSL* ssl = stream.native_handle();
  SSL_set_tlsext_host_name(ssl, host.c_str());
  if (auto st = tls::require_pkix_name(ssl, {host}); !st) co_return st.error();
  auto [hs] = co_await stream.async_handshake(asio::ssl::stream_base::client, kAsTuple);
  if (hs) co_return Error{fmt::format("TLS handshake with {}: {}", host, hs.message())};
  // The context verifies nothing itself (tls/client.hpp): the chain and the name are checked here.
  if (tls::peer_trust(ssl) != tls::Trust::kVerified)
    co_return Error{fmt::format("the certificate of {} is not verified: {}", host, tls::verify_error(ssl))};
  std::string request = fmt::format(
      "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {}\r\nUser-Agent: Postern\r\nAccept: text/plain\r\n"
      "Connection: close\r\n\r\n",
      host);
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(request), kAsTuple);
  if (wec) co_return Error{fmt::format("sending the request to {}: {}", host, wec.message())};
  HttpResponseReader reader;
  std::string buf(16 * 1024, '\0');
  while (reader.state() == HttpResponseReader::State::kMore) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(buf), kAsTuple);
    if (n > 0) reader.feed(std::string_view(buf.data(), n));
    if (ec && reader.state() == HttpResponseReader::State::kMore) {
      // A close without TLS close_notify (stream truncated) ends a close-delimited body as well.
      if (ec != asio::error::eof && ec != asio::ssl::error::stream_truncated)
        co_return Error{fmt::format("reading from {}: {}", host, ec.message())};
      reader.end();
    }
  }
  if (reader.state() == HttpResponseReader::State::kFailed)
    co_return Error{fmt::format("the response of {}: {}", host, reader.error())};
  if (reader.status() != 200)
    co_return Error{fmt::format("{} answered HTTP status {}", host, reader.status())};
  if (!is_text_plain(reader.content_type()))
    co_return Error{fmt::format("{} sent Content-Type \"{}\", not text/plain", host,
                                printable(reader.content_type(), 60))};
  co_return reader.body();
}

}  // namespace

std::optional<CachedStsPolicy> StsCache::load(const std::string& domain, int64_t now) const {
  if (!sts_domain_ok(domain)) return std::nullopt;
  auto text = read_file(directory_ + "/" + domain);
  if (!text || text->size() > kMaxPolicyBody + 256) return std::nullopt;
  // "id: ID\nexpires: TIME\n\n" and the policy.
  size_t blank = text->find("\n\n");
  if (blank == std::string::npos) return std::nullopt;
  std::vector<std::string_view> head = split_lines(std::string_view(*text).substr(0, blank));
  unsigned long long expires = 0;
  if (head.size() != 2 || !head[0].starts_with("id: ") || !head[1].starts_with("expires: ") ||
      !parse_u64(head[1].substr(9), expires) || static_cast<int64_t>(expires) <= now)
    return std::nullopt;
  auto policy = parse_sts_policy(std::string_view(*text).substr(blank + 2));
  if (!policy) return std::nullopt;
  return CachedStsPolicy{std::string(head[0].substr(4)), static_cast<int64_t>(expires), std::move(*policy)};
}

Status StsCache::store(const std::string& domain, const std::string& id, std::string_view policy_text,
                       int64_t expires) const {
  if (!sts_domain_ok(domain)) return Error{fmt::format("\"{}\" is not a domain name", printable(domain))};
  if (::mkdir(directory_.c_str(), 0700) != 0 && errno != EEXIST)
    return Error{fmt::format("{}: {}", directory_, std::strerror(errno))};
  return write_file_atomically(directory_ + "/" + domain,
                               fmt::format("id: {}\nexpires: {}\n\n{}", id, expires, policy_text), 0600);
}

asio::awaitable<Result<std::string>> fetch_sts_policy(dns::Resolver& resolver, asio::ssl::context& tls,
                                                      std::string domain, bool want_v4, bool want_v6,
                                                      std::chrono::seconds timeout, uint16_t port) {
  std::string host = "mta-sts." + domain;
  auto executor = co_await asio::this_coro::executor;
  // One deadline for the whole fetch: when it expires the socket in use is closed, which ends whatever
  // operation waits on it. The handler holds the stream, so it may run after this frame is gone.
  auto stream = std::make_shared<TlsStream>(tcp::socket(executor), tls);
  auto expired = std::make_shared<bool>(false);
  asio::steady_timer deadline(executor, timeout);
  deadline.async_wait([stream, expired](const asio::error_code& ec) {
    if (ec) return;
    *expired = true;
    asio::error_code ignored;
    stream->lowest_layer().close(ignored);
  });
  auto addresses = co_await resolver.addresses(host, want_v4, want_v6);
  Result<std::string> result = Error{fmt::format("no address for {}: {}", host, addresses.why)};
  int tried = 0;
  for (const auto& address : addresses.records) {
    if (*expired || tried++ == kMaxAddresses) break;
    // A failed connect leaves the TLS state untouched: the next address reuses the stream.
    asio::error_code ignored;
    stream->lowest_layer().close(ignored);
    auto [ec] = co_await stream->next_layer().async_connect(tcp::endpoint(address, port), kAsTuple);
    if (ec) {
      result = Error{fmt::format("connect to {}[{}]:{}: {}", host, address.to_string(), port, ec.message())};
      continue;
    }
    result = co_await get_policy(*stream, host);
    break;
  }
  deadline.cancel();
  asio::error_code ignored;
  stream->lowest_layer().close(ignored);
  if (*expired) co_return Error{fmt::format("fetching the policy of {} timed out", domain)};
  co_return result;
}

MtaSts::MtaSts(std::string cache_directory, Fetcher fetcher, Clock clock)
    : cache_(std::move(cache_directory)), fetcher_(std::move(fetcher)), clock_(std::move(clock)) {}

std::shared_ptr<MtaSts> MtaSts::from_config(const config::Config& cfg,
                                            std::shared_ptr<asio::ssl::context> tls, bool want_v4,
                                            bool want_v6) {
  if (!cfg.get_bool("smtp_mta_sts")) return nullptr;
  auto timeout = std::chrono::seconds(cfg.get_int("smtp_mta_sts_timeout"));
  Fetcher fetch = [tls, timeout, want_v4, want_v6](dns::Resolver& resolver, std::string domain) {
    return fetch_sts_policy(resolver, *tls, std::move(domain), want_v4, want_v6, timeout);
  };
  Clock clock = [] { return static_cast<int64_t>(std::time(nullptr)); };
  return std::make_shared<MtaSts>(cfg.get_path("queue_directory") + "/mta-sts", std::move(fetch),
                                  std::move(clock));
}

asio::awaitable<std::optional<StsPolicy>> MtaSts::policy(dns::Resolver& resolver, std::string domain) {
  domain = to_lower(domain);
  if (!sts_domain_ok(domain)) co_return std::nullopt;
  int64_t now = clock_();
  auto cached = cache_.load(domain, now);
  auto txt = co_await resolver.txt("_mta-sts." + domain);
  std::optional<std::string> id;
  if (txt.status == dns::Status::kFound) id = sts_record_id(txt.records);
  // No (valid) record, or DNS failed: a cached policy stays in force until it expires (5.1).
  if (!id || (cached && cached->id == *id)) {
    if (cached) co_return cached->policy;
    co_return std::nullopt;
  }
  auto text = co_await fetcher_(resolver, domain);
  Result<StsPolicy> fetched = text ? parse_sts_policy(*text) : Result<StsPolicy>(text.error());
  if (!fetched) {
    log::warning("smtp", "MTA-STS policy of {} (id {}): {}{}", domain, *id, fetched.error().message,
                 cached ? "; the cached policy stays in force" : "");
    if (cached) co_return cached->policy;
    co_return std::nullopt;
  }
  if (auto st = cache_.store(domain, *id, *text, now + static_cast<int64_t>(fetched->max_age)); !st)
    log::warning("smtp", "MTA-STS policy cache: {}", st.error().message);
  log::info("smtp", "MTA-STS policy of {} (id {}): mode {}, max_age {}", domain, *id,
            sts_mode_name(fetched->mode), fetched->max_age);
  co_return std::move(*fetched);
}

}  // namespace postern::delivery

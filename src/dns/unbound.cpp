// dns/unbound.cpp: UnboundResolver (see unbound.hpp). Each context runs libunbound's resolver on a thread of
// its own (ub_ctx_async); its answer pipe (ub_fd) is watched by an Asio descriptor, and ub_process() runs the
// callbacks, which hand each answer to the waiting coroutine's executor. A per-query timer ends a query that
// gets no answer as a temporary failure (and ub_cancel()s it). Any executor may wait: the answer is posted to
// it, and the timer has a strand of its own. Security: answers come from the network. libunbound parses the
// DNS messages (and, in the validating context, checks DNSSEC); we read only its parsed result: the rcode,
// flags and the rdata array, taking each record's length from len[] and decoding it with the length-checked
// dns/rdata.cpp. The plain context does no DNSSEC validation ("module-config: iterator"), so its answers are
// never "secure".
#include "dns/unbound.hpp"

#include <unbound.h>

#include <fmt/format.h>
#include <asio/async_result.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <functional>
#include <mutex>

#include "base/log.hpp"
#include "base/strings.hpp"

namespace postern::dns {

// One ub_ctx and the watch of its answer pipe. The pipe is watched only while queries are outstanding, so
// that an idle resolver leaves the io_context without work (io_context::run() returns at shutdown).
class UnboundResolver::Context {
 public:
  Context(asio::io_context& io, ub_ctx* ctx) : ctx_(ctx), fd_(io) {}
  ~Context() {
    if (fd_.is_open()) fd_.release();  // the descriptor is libunbound's
    ub_ctx_delete(ctx_);
  }
  ub_ctx* get() const { return ctx_; }

  // A query was sent / libunbound is done with one (answered, or cancelled).
  void begin() {
    std::lock_guard lock(mutex_);
    ++outstanding_;
    if (!watching_) wait();
  }
  void end() {
    std::lock_guard lock(mutex_);
    if (--outstanding_ == 0 && watching_) fd_.cancel();
  }

 private:
  void wait() {  // under mutex_
    if (!fd_.is_open()) fd_.assign(ub_fd(ctx_));
    watching_ = true;
    fd_.async_wait(asio::posix::descriptor_base::wait_read, [this](const asio::error_code& ec) {
      // ub_process runs the callbacks, which call end(): not under mutex_.
      if (!ec)
        if (int err = ub_process(ctx_); err != 0) log::error("dns", "ub_process: {}", ub_strerror(err));
      std::lock_guard lock(mutex_);
      watching_ = false;
      if (outstanding_ > 0) wait();
    });
  }

  ub_ctx* ctx_;
  std::mutex mutex_;
  asio::posix::stream_descriptor fd_;
  int outstanding_ = 0;
  bool watching_ = false;
};

namespace {

constexpr int kClassIn = 1;

// One query in flight. The callback and the timeout race to finish it; finish() lets exactly one of them hand
// the answer to the waiting coroutine. libunbound's `mydata` is a heap-held reference (`holder`), dropped by
// the callback, or by the timeout when ub_cancel() succeeds (then the callback never runs).
struct Pending {
  Pending(asio::io_context& io, UnboundResolver::Context& c)
      : strand(asio::make_strand(io)), timer(strand), context(c) {}
  asio::strand<asio::io_context::executor_type> strand;  // the timer's
  asio::steady_timer timer;
  UnboundResolver::Context& context;
  std::shared_ptr<Pending>* holder = nullptr;
  int id = 0;  // libunbound's, for ub_cancel

  void set_completion(std::function<void(RawAnswer)> f) { complete_ = std::move(f); }
  bool finished() {
    std::lock_guard lock(mutex_);
    return !complete_;
  }
  // Hands `answer` to the coroutine unless the other side already did; true when this call did.
  bool finish(RawAnswer answer) {
    std::function<void(RawAnswer)> f;
    {
      std::lock_guard lock(mutex_);
      f.swap(complete_);
    }
    if (!f) return false;
    f(std::move(answer));
    return true;
  }

 private:
  std::mutex mutex_;
  std::function<void(RawAnswer)> complete_;
};
using Holder = std::shared_ptr<Pending>;

RawAnswer failure(Status s, std::string why) {
  return RawAnswer{s, false, {}, std::move(why)};
}

RawAnswer convert(int err, ub_result* result) {
  if (err != 0) return failure(Status::kTempFail, ub_strerror(err));
  std::unique_ptr<ub_result, decltype(&ub_resolve_free)> r(result, ub_resolve_free);
  if (r->bogus) return failure(Status::kBogus, r->why_bogus ? r->why_bogus : "DNSSEC validation failed");
  RawAnswer a;
  a.secure = r->secure != 0;
  if (r->nxdomain || r->rcode == 3) {
    a.status = Status::kNxDomain;
    a.why = "no such domain";
  } else if (r->rcode != 0) {
    a.status = Status::kTempFail;
    a.why = r->rcode == 2 ? "server failure" : fmt::format("DNS error (rcode {})", r->rcode);
  } else if (!r->havedata) {
    a.status = Status::kNoData;
  } else {
    a.status = Status::kFound;
    for (int i = 0; r->data[i] != nullptr; ++i)
      if (r->len[i] >= 0) a.rdata.emplace_back(r->data[i], static_cast<size_t>(r->len[i]));
  }
  return a;
}

void on_answer(void* data, int err, ub_result* result) {
  std::unique_ptr<Holder> holder(static_cast<Holder*>(data));
  Holder p = *holder;
  p->context.end();
  if (p->finish(convert(err, result))) asio::post(p->strand, [p] { p->timer.cancel(); });
}

void on_timeout(const Holder& p) {
  if (!p->finish(failure(Status::kTempFail, "no answer in time"))) return;
  if (ub_cancel(p->context.get(), p->id) == 0) {  // else the callback is running, and drops the holder
    p->context.end();
    delete p->holder;
  }
}

}  // namespace

Result<std::string> forwarder(std::string_view server) {
  std::string_view host = server, port;
  if (!server.empty() && server.front() == '[') {
    size_t close = server.find(']');
    if (close == std::string_view::npos) return Error{fmt::format("\"{}\": missing ]", printable(server))};
    host = server.substr(1, close - 1);
    std::string_view rest = server.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return Error{fmt::format("\"{}\": expected :port after ]", printable(server))};
    if (!rest.empty()) port = rest.substr(1);
  } else if (size_t colon = server.find(':');
             colon != std::string_view::npos && server.find(':', colon + 1) == std::string_view::npos) {
    host = server.substr(0, colon);
    port = server.substr(colon + 1);
  }
  asio::error_code ec;
  asio::ip::make_address(std::string(host), ec);
  if (ec) return Error{fmt::format("\"{}\": not a numeric IP address", printable(server))};
  unsigned long long n = 53;
  if (!port.empty() && (!parse_u64(port, n) || n == 0 || n > 65535))
    return Error{fmt::format("\"{}\": bad port", printable(server))};
  return fmt::format("{}@{}", host, n);
}

UnboundResolver::UnboundResolver(asio::io_context& io, UnboundOptions options)
    : io_(io), options_(std::move(options)) {}

UnboundResolver::~UnboundResolver() = default;

Result<std::unique_ptr<UnboundResolver::Context>> UnboundResolver::make_context(asio::io_context& io,
                                                                                const UnboundOptions& options,
                                                                                bool validate) {
  ub_ctx* raw = ub_ctx_create();
  if (raw == nullptr) return Error{"libunbound: cannot create a context"};
  auto ctx = std::make_unique<Context>(io, raw);
  std::string failed;
  auto ok = [&](int err, std::string_view what) {
    if (err != 0) failed = fmt::format("{}: {}", what, ub_strerror(err));
    return err == 0;
  };
  // A thread, not a forked process (the server has threads and may have dropped privileges); servers on
  // loopback are allowed (tests, a local cache), and names under .test (RFC 6761 6.2) are asked like any
  // other instead of answered NXDOMAIN by libunbound's built-in local zone: tests serve them.
  if (!ok(ub_ctx_async(raw, 1), "libunbound") ||
      !ok(ub_ctx_set_option(raw, "do-not-query-localhost:", "no"), "libunbound") ||
      !ok(ub_ctx_set_option(raw, "local-zone:", "test. transparent"), "libunbound") ||
      !ok(ub_ctx_set_option(raw, "module-config:", validate ? "validator iterator" : "iterator"),
          "libunbound"))
    return Error{failed};
  if (validate && !ok(ub_ctx_add_ta_file(raw, options.trust_anchor.c_str()), options.trust_anchor))
    return Error{failed};
  if (options.servers.empty() && !ok(ub_ctx_resolvconf(raw, nullptr), "/etc/resolv.conf"))
    return Error{failed};
  for (const auto& server : options.servers) {
    auto fwd = forwarder(server);
    if (!fwd) return Error{"dns_servers: " + fwd.error().message};
    if (!ok(ub_ctx_set_fwd(raw, fwd->c_str()), "dns_servers: " + server)) return Error{failed};
  }
  return ctx;
}

Result<std::unique_ptr<UnboundResolver>> UnboundResolver::create(asio::io_context& io,
                                                                 UnboundOptions options) {
  std::unique_ptr<UnboundResolver> r(new UnboundResolver(io, std::move(options)));
  auto plain = make_context(io, r->options_, false);
  if (!plain) return plain.error();
  r->plain_ = std::move(*plain);
  return r;
}

asio::awaitable<RawAnswer> UnboundResolver::query(std::string name, Type type, bool validate) {
  Context* ctx = plain_.get();
  if (validate) {
    std::lock_guard lock(mutex_);
    if (!validating_) {
      auto made = make_context(io_, options_, true);
      if (!made) {
        log::error("dns", "{}", made.error().message);
        co_return failure(Status::kTempFail, made.error().message);
      }
      validating_ = std::move(*made);
    }
    ctx = validating_.get();
  }
  auto p = std::make_shared<Pending>(io_, *ctx);
  auto start = [p, ctx, name = std::move(name), type, timeout = options_.timeout](auto handler) {
    auto ex = asio::get_associated_executor(handler);
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    p->set_completion(
        [ex, h](RawAnswer a) { asio::post(ex, [h, a = std::move(a)]() mutable { (*h)(std::move(a)); }); });
    p->holder = new Holder(p);
    ctx->begin();
    if (int err = ub_resolve_async(ctx->get(), name.c_str(), static_cast<int>(type), kClassIn, p->holder,
                                   on_answer, &p->id);
        err != 0) {
      ctx->end();
      delete p->holder;
      p->finish(failure(Status::kTempFail, ub_strerror(err)));
      return;
    }
    // Armed on the timer's strand, where the callback's cancel() also runs: whichever comes first wins.
    asio::post(p->strand, [p, timeout] {
      if (p->finished()) return;
      p->timer.expires_after(timeout);
      p->timer.async_wait([p](const asio::error_code& ec) {
        if (!ec) on_timeout(p);
      });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(RawAnswer)>(
      std::move(start), asio::use_awaitable);
}

}  // namespace postern::dns

// dns/resolver.cpp: the typed lookups on top of Resolver::query, and StaticResolver (see resolver.hpp).
// Security: record data is decoded by dns/rdata.cpp, which checks every length.
#include "dns/resolver.hpp"

#include <fmt/format.h>

#include <optional>

#include "base/strings.hpp"

namespace postern::dns {
namespace {

std::string canonical(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return to_lower(name);
}

// Decodes each record with `parse`; malformed records are skipped, and none left of some is a failure.
template <class T, class Parse>
Answer<T> decode(RawAnswer raw, Parse parse) {
  Answer<T> out{raw.status, raw.secure, {}, std::move(raw.why)};
  if (raw.status != Status::kFound) return out;
  for (const auto& r : raw.rdata)
    if (auto v = parse(r)) out.records.push_back(std::move(*v));
  if (out.records.empty()) {
    out.status = Status::kTempFail;
    out.why = "malformed records in the answer";
  }
  return out;
}

// A or AAAA record data (told apart by their length).
std::optional<asio::ip::address> parse_address(std::string_view rdata) {
  if (auto v4 = parse_a(rdata)) return asio::ip::address_v4(*v4);
  if (auto v6 = parse_aaaa(rdata)) return asio::ip::address_v6(*v6);
  return std::nullopt;
}

// How an address lookup of two types ends: see Resolver::addresses.
Status combine(Status a, Status b) {
  for (Status s : {Status::kFound, Status::kBogus, Status::kTempFail, Status::kNoData})
    if (a == s || b == s) return s;
  return Status::kNxDomain;
}

}  // namespace

bool is_null_mx(const Answer<Mx>& answer) {
  return answer.status == Status::kFound && answer.records.size() == 1 && answer.records[0].host.empty();
}

asio::awaitable<MailDomain> mail_domain(Resolver& resolver, std::string domain) {
  auto mx = co_await resolver.mx(domain);
  if (is_null_mx(mx)) co_return MailDomain::kNullMx;
  if (mx.status == Status::kFound) co_return MailDomain::kExists;
  if (mx.status == Status::kNxDomain) co_return MailDomain::kNotFound;
  if (mx.status != Status::kNoData) co_return MailDomain::kTempFail;  // servers that fail MX fail A too
  auto a = co_await resolver.addresses(std::move(domain), true, true);
  if (a.status == Status::kFound) co_return MailDomain::kExists;
  if (a.status == Status::kNoData || a.status == Status::kNxDomain) co_return MailDomain::kNotFound;
  co_return MailDomain::kTempFail;
}

asio::awaitable<Answer<Mx>> Resolver::mx(std::string domain, bool validate) {
  co_return decode<Mx>(co_await query(std::move(domain), Type::kMx, validate), parse_mx);
}

asio::awaitable<Answer<asio::ip::address>> Resolver::addresses(std::string host, bool want_v4, bool want_v6,
                                                               bool validate) {
  Answer<asio::ip::address> out{Status::kNxDomain, true, {}, {}};
  bool first = true;
  auto add = [&](Answer<asio::ip::address> part) {
    out.status = first ? part.status : combine(out.status, part.status);
    out.secure = out.secure && part.secure;
    if (out.why.empty()) out.why = std::move(part.why);
    for (auto& a : part.records) out.records.push_back(a);
    first = false;
  };
  for (auto [wanted, type] : {std::pair{want_v4, Type::kA}, std::pair{want_v6, Type::kAaaa}})
    if (wanted) add(decode<asio::ip::address>(co_await query(host, type, validate), parse_address));
  if (first) out.status = Status::kNoData;  // neither type asked for
  co_return out;
}

asio::awaitable<Answer<std::string>> Resolver::txt(std::string name, bool validate) {
  co_return decode<std::string>(co_await query(std::move(name), Type::kTxt, validate), parse_txt);
}

asio::awaitable<Answer<Tlsa>> Resolver::tlsa(std::string name, bool validate) {
  co_return decode<Tlsa>(co_await query(std::move(name), Type::kTlsa, validate), parse_tlsa);
}

StaticResolver::Name& StaticResolver::entry(std::string_view name) {
  return names_[canonical(name)];
}

void StaticResolver::add_mx(std::string_view name, uint16_t preference, std::string_view host) {
  entry(name).rdata[Type::kMx].push_back(encode_mx(Mx{preference, std::string(host)}));
}

void StaticResolver::add_address(std::string_view name, std::string_view ip) {
  asio::error_code ec;
  auto a = asio::ip::make_address(std::string(ip), ec);
  if (ec) return;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    entry(name).rdata[Type::kA].emplace_back(b.begin(), b.end());
  } else {
    auto b = a.to_v6().to_bytes();
    entry(name).rdata[Type::kAaaa].emplace_back(b.begin(), b.end());
  }
}

void StaticResolver::add_txt(std::string_view name, std::string_view text) {
  entry(name).rdata[Type::kTxt].push_back(encode_txt(text));
}

void StaticResolver::add_tlsa(std::string_view name, const Tlsa& tlsa) {
  entry(name).rdata[Type::kTlsa].push_back(encode_tlsa(tlsa));
}

void StaticResolver::set_status(std::string_view name, Status status) {
  entry(name).status = status;
}

void StaticResolver::set_secure(std::string_view name) {
  entry(name).secure = true;
}

asio::awaitable<RawAnswer> StaticResolver::query(std::string name, Type type, bool validate) {
  std::string key = canonical(name);
  queries_.push_back(fmt::format("{}/{}", key, static_cast<int>(type)));
  auto it = names_.find(key);
  if (it == names_.end()) co_return RawAnswer{Status::kNxDomain, false, {}, "no such domain"};
  const Name& n = it->second;
  bool secure = validate && n.secure;
  if (n.status) co_return RawAnswer{*n.status, secure, {}, std::string(status_name(*n.status))};
  auto records = n.rdata.find(type);
  if (records == n.rdata.end()) co_return RawAnswer{Status::kNoData, secure, {}, {}};
  co_return RawAnswer{Status::kFound, secure, records->second, {}};
}

}  // namespace postern::dns

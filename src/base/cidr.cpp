// base/cidr.cpp: address and network parsing and matching (see cidr.hpp).
// Security: inet_pton sees only a bounded, NUL-free copy of the text.
#include "base/cidr.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>

#include "base/strings.hpp"

namespace postern {
namespace {

constexpr int kV4Offset = 96;  // bits before an IPv4-mapped address's IPv4 part
constexpr size_t kMaxAddressText = 64;

}  // namespace

bool is_ipv4(const IpBytes& ip) {
  for (int i = 0; i < 10; ++i)
    if (ip[i] != 0) return false;
  return ip[10] == 0xff && ip[11] == 0xff;
}

std::optional<IpBytes> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() > kMaxAddressText || text.find('\0') != std::string_view::npos)
    return std::nullopt;
  std::string s(text);
  IpBytes ip{};
  if (s.find(':') != std::string::npos) {
    if (inet_pton(AF_INET6, s.c_str(), ip.data()) != 1) return std::nullopt;
    return ip;
  }
  ip[10] = ip[11] = 0xff;
  if (inet_pton(AF_INET, s.c_str(), ip.data() + 12) != 1) return std::nullopt;
  return ip;
}

std::string format_ip(const IpBytes& ip) {
  char buf[INET6_ADDRSTRLEN];
  if (is_ipv4(ip)) return inet_ntop(AF_INET, ip.data() + 12, buf, sizeof buf);
  return inet_ntop(AF_INET6, ip.data(), buf, sizeof buf);
}

bool Network::contains(const IpBytes& ip) const {
  int bits = prefix;
  for (size_t i = 0; bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((ip[i] & mask) != (address[i] & mask)) return false;
  }
  return true;
}

std::string Network::str() const {
  if (is_ipv4(address) && prefix >= kV4Offset)
    return fmt::format("{}/{}", format_ip(address), prefix - kV4Offset);
  return fmt::format("[{}]/{}", format_ip(address), prefix);
}

namespace {

// `ip` with all but the first `prefix` bits (IPv6 bits) cleared.
Network masked(const IpBytes& ip, int prefix) {
  Network n;
  n.prefix = prefix;
  int bits = prefix;
  for (size_t i = 0; i < n.address.size(); ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
    n.address[i] = ip[i] & mask;
  }
  return n;
}

}  // namespace

Network network_of(const IpBytes& ip, int prefix) {
  return masked(ip, is_ipv4(ip) ? prefix + kV4Offset : prefix);
}

Result<Network> parse_network(std::string_view text) {
  std::string_view addr = text;
  std::optional<unsigned long long> len;
  if (size_t slash = text.rfind('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    unsigned long long n;
    if (!parse_u64(text.substr(slash + 1), n))
      return Error{fmt::format("bad prefix length in \"{}\"", printable(text))};
    len = n;
  }
  auto ip = parse_ip(addr);
  if (!ip) return Error{fmt::format("\"{}\" is not an IPv4 or IPv6 address or network", printable(text))};
  bool v4_notation = addr.find(':') == std::string_view::npos;
  unsigned long long max = v4_notation ? 32 : 128;
  if (len && *len > max) return Error{fmt::format("prefix length too large in \"{}\"", printable(text))};
  int prefix = static_cast<int>(len.value_or(max));
  Network n = masked(*ip, v4_notation ? prefix + kV4Offset : prefix);
  if (n.address != *ip)
    return Error{fmt::format("non-null host address bits in \"{}\", perhaps you should use \"{}\" instead",
                             printable(text), n.str())};
  return n;
}

bool NetworkList::contains(std::string_view ip) const {
  auto a = parse_ip(ip);
  if (!a) return false;
  for (const auto& n : networks_)
    if (n.contains(*a)) return true;
  return false;
}

}  // namespace postern

// base/cidr.hpp: IPv4 and IPv6 addresses and networks as Postfix's mynetworks writes them ("10.0.0.0/8",
// "192.0.2.1", "[2001:db8::]/32", "[::1]/128"), and a list of them that tells whether a client is inside.
// IPv4 is held as IPv4-mapped IPv6 (::ffff:a.b.c.d), so "127.0.0.0/8" and "[::ffff:127.0.0.0]/104" match the
// same clients whichever way the socket reported them. Pure: no I/O.
// Security: patterns come from the administrator; addresses from the socket. A pattern with host bits set
// ("10.1.2.3/8") is refused, as Postfix refuses it, because it usually hides a typo.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace postern {

using IpBytes = std::array<uint8_t, 16>;

// A numeric IPv4 or IPv6 address, optionally in brackets ("[::1]"); IPv4 comes back IPv4-mapped.
std::optional<IpBytes> parse_ip(std::string_view text);
// The address in its usual text form (IPv4-mapped addresses as dotted quads).
std::string format_ip(const IpBytes& ip);
bool is_ipv4(const IpBytes& ip);

struct Network {
  IpBytes address{};
  int prefix = 128;  // in IPv6 bits: an IPv4 /8 is /104

  bool contains(const IpBytes& ip) const;
  // Postfix's notation: "10.0.0.0/8", "[2001:db8::]/32".
  std::string str() const;
};

// "ADDR" (a host) or "ADDR/LEN"; IPv6 in brackets or bare.
Result<Network> parse_network(std::string_view text);
// The network of `prefix` bits (IPv4 prefixes counted in IPv4 bits when `ip` is IPv4) around `ip`.
Network network_of(const IpBytes& ip, int prefix);

class NetworkList {
 public:
  void add(const Network& n) { networks_.push_back(n); }
  // False for text that is not an address (a client name, "unknown").
  bool contains(std::string_view ip) const;
  const std::vector<Network>& networks() const { return networks_; }

 private:
  std::vector<Network> networks_;
};

}  // namespace postern

#include "net/listen.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include "base/strings.hpp"

namespace postern::net {
namespace {

bool is_ipv6(const std::string& host) {
  return host.find(':') != std::string::npos;
}

// Bits set in a netmask.
int prefix_of(const sockaddr* mask) {
  if (!mask) return -1;
  const uint8_t* b =
      mask->sa_family == AF_INET
          ? reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(mask)->sin_addr)
          : reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6*>(mask)->sin6_addr);
  int n = 0;
  for (size_t i = 0; i < (mask->sa_family == AF_INET ? 4u : 16u); ++i) n += __builtin_popcount(b[i]);
  return n;
}

}  // namespace

smtp::server::HostFacts host_facts(const config::Config& config) {
  smtp::server::HostFacts facts;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i; i = i->ifa_next) {
      if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)) continue;
      char text[INET6_ADDRSTRLEN];
      const void* a =
          i->ifa_addr->sa_family == AF_INET
              ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr)
              : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr);
      auto ip = parse_ip(inet_ntop(i->ifa_addr->sa_family, a, text, sizeof text));
      int prefix = prefix_of(i->ifa_netmask);
      if (!ip || prefix < 0) continue;
      facts.interfaces.push_back(Network{*ip, is_ipv4(*ip) ? prefix + 96 : prefix});  // the address itself
    }
    ::freeifaddrs(list);
  }
  for (std::string_view service : smtp::server::kSmtpServices) {
    auto addrs = listen_addresses(config, fmt::format("{}_listen", service));
    if (!addrs) continue;  // reported by the listener itself
    for (const auto& l : *addrs) {
      if (l.host == "0.0.0.0" || l.host == "::") {
        bool v4 = l.host == "0.0.0.0";
        for (const auto& n : facts.interfaces)
          if (is_ipv4(n.address) == v4) facts.listening.push_back(n.address);
      } else if (auto ip = parse_ip(l.host)) {
        facts.listening.push_back(*ip);
      }
    }
  }
  return facts;
}

Result<std::vector<ListenAddress>> listen_addresses(const config::Config& config, std::string_view key) {
  std::vector<ListenAddress> out;
  std::string protocols = to_lower(config.get("inet_protocols"));
  bool v4 = protocols.find("all") != std::string::npos || protocols.find("ipv4") != std::string::npos;
  bool v6 = protocols.find("all") != std::string::npos || protocols.find("ipv6") != std::string::npos;
  std::vector<std::string> interfaces;
  for (const auto& i : config.get_list("inet_interfaces")) {
    std::string l = to_lower(i);
    if (l == "all") {
      if (v4) interfaces.push_back("0.0.0.0");
      if (v6) interfaces.push_back("::");
    } else if (l == "loopback-only" || l == "localhost") {
      if (v4) interfaces.push_back("127.0.0.1");
      if (v6) interfaces.push_back("::1");
    } else {
      std::string h = i;
      if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
      interfaces.push_back(h);
    }
  }
  for (const auto& item : config.get_list(key)) {
    std::string host, port_text;
    if (!item.empty() && item.front() == '[') {
      size_t close = item.find(']');
      if (close == std::string::npos || close + 1 >= item.size() || item[close + 1] != ':')
        return Error{fmt::format("{}: bad listen address \"{}\"", key, item)};
      host = item.substr(1, close - 1);
      port_text = item.substr(close + 2);
    } else if (size_t colon = item.rfind(':'); colon != std::string::npos) {
      host = item.substr(0, colon);
      port_text = item.substr(colon + 1);
    } else {
      port_text = item;
    }
    unsigned long long port = 0;
    if (!parse_u64(port_text, port) || port == 0 || port > 65535)
      return Error{fmt::format("{}: bad port in \"{}\"", key, item)};
    if (host.empty()) {
      for (const auto& h : interfaces) out.push_back({h, static_cast<unsigned short>(port), true});
      continue;
    }
    unsigned char buf[16];
    if (inet_pton(is_ipv6(host) ? AF_INET6 : AF_INET, host.c_str(), buf) != 1)
      return Error{fmt::format("{}: \"{}\" is not a numeric IP address", key, host)};
    out.push_back({host, static_cast<unsigned short>(port)});
  }
  return out;
}

}  // namespace postern::net

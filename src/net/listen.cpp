#include "net/listen.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>

#include "base/strings.hpp"

namespace postern::net {
namespace {

bool is_ipv6(const std::string& host) {
  return host.find(':') != std::string::npos;
}

}  // namespace

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

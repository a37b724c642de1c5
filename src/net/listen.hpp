// net/listen.hpp: turns "*_listen" values ("2525", "127.0.0.1:2525", "[::1]:2525") and inet_interfaces /
// inet_protocols into the endpoints to bind; what the host knows about its own addresses (for
// mynetworks_style and address literals).
#pragma once

#include <string>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"
#include "smtp/server/policy.hpp"

namespace postern::net {

struct ListenAddress {
  std::string host;  // numeric address
  unsigned short port = 0;
  bool implicit = false;  // from inet_interfaces (a bare port), not named in the *_listen value
};

Result<std::vector<ListenAddress>> listen_addresses(const config::Config& config, std::string_view key);

// The interfaces' addresses and networks, and the addresses the SMTP listeners (smtp, submission,
// submissions) accept on, a wildcard standing for every interface address.
smtp::server::HostFacts host_facts(const config::Config& config);

}  // namespace postern::net

#include "smtp/client/capabilities.hpp"

#include <algorithm>

#include "base/strings.hpp"

namespace postern::smtp::client {

Capabilities Capabilities::from_ehlo(const proto::Reply& reply) {
  Capabilities caps;
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = reply.lines[i];
    // "AUTH=LOGIN PLAIN" (pre-RFC 4954 servers) names the keyword and its first parameter with '='.
    size_t end = line.find_first_of(" =");
    std::string keyword = to_lower(line.substr(0, end));
    std::vector<std::string> params =
        end == std::string_view::npos ? std::vector<std::string>() : split_list(line.substr(end + 1), " ");
    if (keyword == "pipelining") {
      caps.pipelining = true;
    } else if (keyword == "size") {
      caps.size = true;
      unsigned long long n = 0;
      if (!params.empty() && parse_u64(params[0], n)) caps.size_limit = n;
    } else if (keyword == "8bitmime") {
      caps.eight_bit_mime = true;
    } else if (keyword == "smtputf8") {
      caps.smtputf8 = true;
    } else if (keyword == "chunking") {
      caps.chunking = true;
    } else if (keyword == "starttls") {
      caps.starttls = true;
    } else if (keyword == "dsn") {
      caps.dsn = true;
    } else if (keyword == "enhancedstatuscodes") {
      caps.enhanced_status_codes = true;
    } else if (keyword == "requiretls") {
      caps.requiretls = true;
    } else if (keyword == "auth") {
      for (const std::string& p : params) {
        std::string mech = p;
        std::transform(mech.begin(), mech.end(), mech.begin(),
                       [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; });
        if (!caps.has_auth(mech)) caps.auth.push_back(std::move(mech));
      }
    }
  }
  return caps;
}

bool Capabilities::has_auth(std::string_view mechanism) const {
  return std::any_of(auth.begin(), auth.end(), [&](const std::string& m) { return iequals(m, mechanism); });
}

}  // namespace postern::smtp::client

// queue/envelope.hpp: who a message is from and for, as received; shared by receiving and delivery.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "queue/queue_file.hpp"

namespace postern::queue {

struct Envelope {
  std::string queue_id;
  std::string sender;                   // empty: the null sender <>
  std::vector<std::string> recipients;  // local ones, as accepted at RCPT, with a domain
  std::vector<std::string> outbound;    // for other domains: they go into the outbound queue
  std::chrono::system_clock::time_point arrival;
  std::string client;           // "host[address]" for logs; "local" for sendmail
  bool trusted_origin = false;  // SASL-authenticated, mynetworks or local submission: DKIM-signed if ours
  // The DSN extension (RFC 3461): RET and ENVID from MAIL; NOTIFY and ORCPT of the recipients (in
  // `recipients` or `outbound`) that gave them at RCPT.
  smtp::proto::Ret ret = smtp::proto::Ret::kUnspecified;
  std::string envid;
  std::map<std::string, DsnRequest> dsn;
  bool requiretls = false;  // RFC 8689: relayed only over verified TLS to servers that offer REQUIRETLS
};

// A Postfix-style queue id: upper-case hex from the time and a counter, unique within this host.
std::string new_queue_id();

}  // namespace postern::queue

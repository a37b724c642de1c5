// net/server.hpp: the network side of `postern serve`: listeners, one coroutine per SMTP connection
// (read -> parse -> session -> write), timeouts, connection limits, deliveries on worker threads,
// graceful stop (SIGTERM) and configuration reload (SIGHUP).
// Security: the only code that reads or writes sockets. Every read is bounded in size and time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"

namespace postern::net {

// Runs every configured service until SIGTERM/SIGINT. Returns an error when a listener cannot be opened.
// `ready` is called once every listener is bound (the daemon writes its pid file then).
Status serve(std::shared_ptr<const config::Config> config, const std::function<void()>& ready);

// The process of one system user's IMAP or POP3 session, started by the privileged helper (as root, the
// client's proxied socket on descriptor 3) when that user logged in: becomes the user, answers the login and
// serves the session. `args`: protocol, user, IMAP tag ("-" for POP3), TLS (1/0), client address, log sink.
Status serve_session(std::shared_ptr<const config::Config> config, const std::vector<std::string>& args);

}  // namespace postern::net

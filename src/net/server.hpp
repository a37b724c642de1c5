// net/server.hpp: the network side of `postern serve`: listeners, one coroutine per SMTP connection
// (read -> parse -> session -> write), timeouts, connection limits, deliveries on worker threads,
// graceful stop (SIGTERM) and configuration reload (SIGHUP).
// Security: the only code that reads or writes sockets. Every read is bounded in size and time.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/result.hpp"
#include "config/config.hpp"

namespace postern::net {

// Runs every configured service until SIGTERM/SIGINT. Returns an error when a listener cannot be opened.
// `ready` is called once every listener is bound (the daemon writes its pid file then).
Status serve(std::shared_ptr<const config::Config> config, const std::function<void()>& ready);

}  // namespace postern::net

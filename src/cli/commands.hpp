// cli/commands.hpp: the subcommands of `postern`. Each takes its arguments (after the command name) and the
// configuration directory, prints to stdout/stderr, and returns the process exit status.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "base/result.hpp"

namespace postern::config {
class Config;
}

namespace postern::cli {

using Args = std::vector<std::string>;

int cmd_serve(const std::string& dir, const Args& args);
// Internal: a system user's IMAP or POP3 session process, started by the privileged helper.
int cmd_session_child(const std::string& dir, const Args& args);
int cmd_service(const std::string& dir, const std::string& verb,
                const Args& args);  // start stop restart status reload
int cmd_postconf(const std::string& dir, const Args& args);
int cmd_check(const std::string& dir, const Args& args);
int cmd_setup(const std::string& dir, const Args& args);
int cmd_sendmail(const std::string& dir, const Args& args);
int cmd_mail(const std::string& dir, const Args& args);
int cmd_maildirmake(const Args& args);
int cmd_user(const std::string& dir, const Args& args);
int cmd_mailq(const std::string& dir, const Args& args);
int cmd_queue(const std::string& dir, const Args& args);
int cmd_dkim(const std::string& dir, const Args& args);
int cmd_demo(const std::string& dir, const Args& args);

// The pid of the running mail system (queue_directory/pid/master.pid), 0 when it is not running.
pid_t running_pid(const config::Config& cfg);

// Applies "key = value" edits to DIR/main.cf (postconf -e, setup), refusing edits that make it invalid.
Status edit_config(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& edits);

// sysexits.h values used by sendmail and the others.
constexpr int kExUsage = 64;
constexpr int kExDataErr = 65;
constexpr int kExNoUser = 67;
constexpr int kExUnavailable = 69;
constexpr int kExSoftware = 70;
constexpr int kExCantCreat = 73;
constexpr int kExIoErr = 74;
constexpr int kExTempFail = 75;
constexpr int kExConfig = 78;

}  // namespace postern::cli

// cli/service.cpp: serve (foreground) and start/stop/restart/status/reload (background daemon with a pid file
// at $queue_directory/pid/master.pid), like `postfix start-fg` and `postfix start/stop/status/reload`.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "base/log.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "net/server.hpp"

namespace postern::cli {
namespace {

std::string pid_file(const config::Config& cfg) {
  return cfg.get_path("queue_directory") + "/pid/master.pid";
}

pid_t read_pid(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 1) return 0;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return 0;
  return static_cast<pid_t>(pid);
}

void write_pid_file(const std::string& path) {
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << ::getpid() << "\n";
  ::rename(tmp.c_str(), path.c_str());
}

Status prepare_queue_directory(const config::Config& cfg) {
  std::string q = cfg.get_path("queue_directory");
  for (const std::string& d : {q, q + "/pid"})
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST)
      return Error{fmt::format("queue_directory: cannot create {}: {}", d, std::strerror(errno))};
  return Ok{};
}

Result<std::shared_ptr<const config::Config>> load(const std::string& dir) {
  auto cfg = config::Config::load(dir);
  if (!cfg) return cfg.error();
  auto shared = std::make_shared<const config::Config>(std::move(*cfg));
  if (auto st = prepare_queue_directory(*shared); !st) return st.error();
  return shared;
}

int run_server(std::shared_ptr<const config::Config> cfg, const std::string& pidfile) {
  auto ready = [&] { write_pid_file(pidfile); };
  auto st = net::serve(cfg, ready);
  if (!pidfile.empty() && read_pid(pidfile) == ::getpid()) ::unlink(pidfile.c_str());
  if (!st) {
    log::write(log::Level::kFatal, "master", st.error().message);
    return 1;
  }
  return 0;
}

int start(const std::string& dir) {
  auto cfg = load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  std::string pidfile = pid_file(**cfg);
  if (pid_t pid = read_pid(pidfile)) {
    fmt::print(stderr, "postern: fatal: the mail system is already running (pid {})\n", pid);
    return 1;
  }
  // The child reports over a pipe whether the listeners came up, so that `start` fails when they cannot.
  int fds[2];
  if (::pipe(fds) != 0) return 1;
  pid_t child = ::fork();
  if (child < 0) return 1;
  if (child == 0) {
    ::close(fds[0]);
    ::setsid();
    if (::fork() != 0) _exit(0);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    std::string logfile = (*cfg)->get_path("maillog_file");
    if (logfile.empty()) {
      log::init(log::Sink::kSyslog);
    } else {
      log::init(log::Sink::kFile, logfile);
    }
    ::dup2(devnull, 2);
    int ready_fd = fds[1];
    auto st = net::serve(*cfg, [&] {
      write_pid_file(pidfile);
      (void)!::write(ready_fd, "1", 1);
      ::close(ready_fd);
    });
    if (read_pid(pidfile) == ::getpid()) ::unlink(pidfile.c_str());
    if (!st) {
      log::write(log::Level::kFatal, "master", st.error().message);
      std::string msg = "0" + st.error().message;
      (void)!::write(ready_fd, msg.data(), msg.size());
      _exit(1);
    }
    _exit(0);
  }
  ::close(fds[1]);
  ::waitpid(child, nullptr, 0);
  std::string reply;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  if (reply.empty() || reply[0] != '1') {
    fmt::print(stderr, "postern: fatal: the mail system did not start: {}\n",
               reply.size() > 1 ? reply.substr(1) : "see the log");
    return 1;
  }
  fmt::print(stderr, "postern: starting the Postern mail system (pid {})\n", read_pid(pidfile));
  return 0;
}

int stop(const std::string& dir, bool quiet_if_stopped) {
  auto cfg = config::Config::load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  std::string pidfile = pid_file(*cfg);
  pid_t pid = read_pid(pidfile);
  if (!pid) {
    if (!quiet_if_stopped) fmt::print(stderr, "postern: fatal: the mail system is not running\n");
    return quiet_if_stopped ? 0 : 1;
  }
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 600; ++i) {
    if (::kill(pid, 0) != 0) {
      fmt::print(stderr, "postern: stopping the Postern mail system\n");
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  fmt::print(stderr, "postern: fatal: pid {} did not stop within 30 seconds\n", pid);
  return 1;
}

}  // namespace

int cmd_serve(const std::string& dir, const Args& args) {
  if (!args.empty()) {
    fmt::print(stderr, "usage: postern -c DIR serve\n");
    return kExUsage;
  }
  auto cfg = load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  std::string pidfile = pid_file(**cfg);
  if (pid_t pid = read_pid(pidfile)) {
    fmt::print(stderr, "postern: fatal: the mail system is already running (pid {})\n", pid);
    return 1;
  }
  return run_server(*cfg, pidfile);
}

int cmd_session_child(const std::string& dir, const Args& args) {
  auto cfg = load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  if (auto st = net::serve_session(*cfg, args); !st) {
    log::write(log::Level::kFatal, "session", st.error().message);
    return 1;
  }
  return 0;
}

pid_t running_pid(const config::Config& cfg) {
  return read_pid(pid_file(cfg));
}

int cmd_service(const std::string& dir, const std::string& verb, const Args& args) {
  if (!args.empty()) {
    fmt::print(stderr, "usage: postern -c DIR {}\n", verb);
    return kExUsage;
  }
  if (verb == "start") return start(dir);
  if (verb == "stop") return stop(dir, false);
  if (verb == "restart") {
    if (int rc = stop(dir, true); rc != 0) return rc;
    return start(dir);
  }
  auto cfg = config::Config::load(dir);
  if (!cfg) {
    fmt::print(stderr, "postern: fatal: {}\n", cfg.error().message);
    return 1;
  }
  pid_t pid = read_pid(pid_file(*cfg));
  if (verb == "status") {
    if (!pid) {
      fmt::print(stderr, "postern: the Postern mail system is not running\n");
      return 1;
    }
    fmt::print(stderr, "postern: the Postern mail system is running: PID: {}\n", pid);
    return 0;
  }
  if (verb == "reload") {
    if (!pid) {
      fmt::print(stderr, "postern: fatal: the mail system is not running\n");
      return 1;
    }
    ::kill(pid, SIGHUP);
    fmt::print(stderr, "postern: refreshing the Postern mail system\n");
    return 0;
  }
  return kExUsage;
}

}  // namespace postern::cli

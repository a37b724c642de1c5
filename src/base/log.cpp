#include "base/log.hpp"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <ctime>

namespace postern::log {
namespace {

Sink g_sink = Sink::kStderr;
int g_fd = 2;
std::string g_path;

const char* level_prefix(Level level) {
  switch (level) {
    case Level::kInfo:
      return "";
    case Level::kWarning:
      return "warning: ";
    case Level::kError:
      return "error: ";
    case Level::kFatal:
      return "fatal: ";
  }
  return "";
}

}  // namespace

std::string sink_spec() {
  switch (g_sink) {
    case Sink::kFile:
      return "file:" + g_path;
    case Sink::kSyslog:
      return "syslog";
    case Sink::kStderr:
      break;
  }
  return "stderr";
}

void init_from_spec(std::string_view spec) {
  if (spec == "syslog") {
    init(Sink::kSyslog);
  } else if (spec.starts_with("file:")) {
    init(Sink::kFile, std::string(spec.substr(5)));
  } else {
    init(Sink::kStderr);
  }
}

void init(Sink sink, const std::string& path) {
  g_sink = sink;
  g_path = path;
  if (sink == Sink::kFile) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd >= 0) {
      g_fd = fd;
    } else {
      g_sink = Sink::kStderr;
    }
  } else if (sink == Sink::kSyslog) {
    openlog("postern", LOG_PID | LOG_NDELAY, LOG_MAIL);
  }
}

void write(Level level, std::string_view program, std::string_view text) {
  if (g_sink == Sink::kSyslog) {
    int prio = level == Level::kInfo ? LOG_INFO : level == Level::kWarning ? LOG_WARNING : LOG_ERR;
    syslog(prio, "%s%.*s", level_prefix(level), static_cast<int>(text.size()), text.data());
    return;
  }
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
  std::string line =
      fmt::format("{} postern/{}[{}]: {}{}\n", stamp, program, ::getpid(), level_prefix(level), text);
  ssize_t n = ::write(g_fd, line.data(), line.size());
  (void)n;
}

}  // namespace postern::log

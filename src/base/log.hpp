// base/log.hpp: one line per event, Postfix style ("postern/smtpd[pid]: QUEUEID: to=<...>, status=sent").
// Goes to stderr (serve), to a file (maillog_file) or to syslog (daemon without maillog_file).
// Thread-safe: each line is written with one write(2).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace postern::log {

enum class Sink { kStderr, kFile, kSyslog };
enum class Level { kInfo, kWarning, kError, kFatal };

// Chooses where lines go; `path` is used for kFile. Call before any other thread starts.
void init(Sink sink, const std::string& path = {});
// The current sink as one word ("stderr", "syslog", "file:PATH") for a process started with exec, which
// passes it to init_from_spec() to log where its parent does.
std::string sink_spec();
void init_from_spec(std::string_view spec);
void write(Level level, std::string_view program, std::string_view text);

template <class... Args>
void info(std::string_view program, fmt::format_string<Args...> f, Args&&... args) {
  write(Level::kInfo, program, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warning(std::string_view program, fmt::format_string<Args...> f, Args&&... args) {
  write(Level::kWarning, program, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(std::string_view program, fmt::format_string<Args...> f, Args&&... args) {
  write(Level::kError, program, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace postern::log

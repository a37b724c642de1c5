#include "base/calendar.hpp"

#include <ctime>

#include "base/strings.hpp"

namespace postern {

int month_index(std::string_view name) {
  if (name.size() < 3) return -1;
  for (size_t i = 0; i < kMonthNames.size(); ++i)
    if (iequals(name.substr(0, 3), kMonthNames[i])) return static_cast<int>(i);
  return -1;
}

// Howard Hinnant's days_from_civil.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = static_cast<unsigned>(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::string local_time_text(std::chrono::system_clock::time_point t, const char* format) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[64];
  if (std::strftime(buf, sizeof buf, format, &tm) == 0) return {};
  return buf;
}

std::string rfc5322_date(std::chrono::system_clock::time_point t) {
  return local_time_text(t, "%a, %d %b %Y %H:%M:%S %z (%Z)");
}

}  // namespace postern

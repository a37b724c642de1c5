// base/calendar.hpp: the little calendar arithmetic the date parsers share (IMAP dates, RFC 5322 Date:), and
// the RFC 5322 date-time that Received:, Date: and DSN fields are written in. Pure; proleptic Gregorian, UTC.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace postern {

inline constexpr std::array<std::string_view, 12> kMonthNames = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Index 0..11 of an English month abbreviation (case-insensitive, first three letters of `name`); -1 if none.
int month_index(std::string_view name);
// Days since 1970-01-01 of year `y`, month `m` (1..12), day `d`.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);

// RFC 5322 date-time of `t` in local time, e.g. "Tue, 24 Nov 2026 06:12:16 +0000 (UTC)".
std::string rfc5322_date(std::chrono::system_clock::time_point t);
// `t` in local time through strftime(3) `format` (at most 63 characters of output).
std::string local_time_text(std::chrono::system_clock::time_point t, const char* format);

}  // namespace postern

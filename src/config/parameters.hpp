// config/parameters.hpp: the one place every main.cf parameter is defined: name, type, default, one line of
// doc. Names are Postfix's (MTA side) and Dovecot's (MDA side) where the meaning is the same, with the same
// defaults.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace postern::config {

enum class Type {
  kString,
  kBool,  // yes | no
  kInt,   // a non-negative decimal number
  kSize,  // bytes, a non-negative decimal number; 0 often means "no limit"
  kTime,  // a number with an optional unit s, m, h, d, w (default unit: seconds)
  kList,  // comma- or space-separated
};

struct Parameter {
  std::string_view name;
  Type type;
  std::string_view
      default_value;  // may use $name expansion; "!" prefix: computed at run time (see defaults.cpp)
  std::string_view doc;
  bool implemented;  // false: accepted so that a Postfix/Dovecot guide's steps work, but without effect yet
};

std::span<const Parameter> parameters();
const Parameter* find_parameter(std::string_view name);
// Services that take per-listener overrides written "SERVICE/parameter = value" (master.cf's -o).
bool is_service_name(std::string_view name);
// What a service sets when main.cf has no "SERVICE/name" line: the submission services require TLS and
// AUTH and relay only for authenticated users, as the submission entry of Postfix's master.cf does.
std::optional<std::string_view> service_default(std::string_view service, std::string_view name);

}  // namespace postern::config

#include "auth/sasl/simple.hpp"

#include <algorithm>
#include <ctime>

#include "base/strings.hpp"

namespace postern::auth::sasl {

bool split_plain(std::string_view b, PlainFields& out) {
  if (std::count(b.begin(), b.end(), '\0') != 2) return false;
  size_t first = b.find('\0'), second = b.find('\0', first + 1);
  out.authzid = b.substr(0, first);
  out.authcid = b.substr(first + 1, second - first - 1);
  out.password = b.substr(second + 1);
  return !out.authcid.empty();
}

Step Plain::step(std::string_view response) {
  if (done_) return {};
  done_ = true;
  PlainFields f;
  if (!split_plain(response, f)) return {};
  if (!f.authzid.empty() && f.authzid != f.authcid) return {Status::kAuthzFailed, ""};
  attempted_ = f.authcid;
  return finish(credentials_.verify(f.authcid, f.password));
}

Step Login::step(std::string_view response) {
  if (++responses_ == 1) {
    if (response.empty()) return {};
    name_ = response;
    return {Status::kContinue, "Password:"};
  }
  if (responses_ > 2) return {};
  attempted_ = name_;
  return finish(credentials_.verify(name_, response));
}

Step CramMd5::start() {
  challenge_ = "<" + hex(random_bytes(8)) + "." + std::to_string(std::time(nullptr)) + "@" + hostname_ + ">";
  return {Status::kContinue, challenge_};
}

Step CramMd5::step(std::string_view response) {
  if (challenge_.empty()) return {};
  std::string challenge = std::move(challenge_);
  challenge_.clear();
  size_t space = response.rfind(' ');
  if (space == std::string_view::npos || space == 0) return {};
  std::string_view name = response.substr(0, space), digest = response.substr(space + 1);
  attempted_ = name;
  auto clear = credentials_.cleartext(name);
  if (clear && clear->unavailable) return {Status::kUnavailable, ""};
  // An unknown user costs one HMAC like a known one.
  std::string expected = hex(hmac_md5(clear ? clear->password.view() : std::string_view(), challenge));
  if (!equal(expected, to_lower(digest)) || !clear) return {};
  user_ = clear->user;
  return {Status::kSuccess, ""};
}

}  // namespace postern::auth::sasl

#include "auth/sasl/scram.hpp"

#include <vector>

#include <fmt/format.h>

#include "auth/sasl/base64.hpp"
#include "base/strings.hpp"

namespace postern::auth::sasl {
namespace {

constexpr size_t kMaxName = 256;

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (true) {
    size_t j = s.find(',', i);
    out.push_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) return out;
    i = j + 1;
  }
}

// RFC 5802 5.1 saslname: "=2C" is ',', "=3D" is '='; any other '=' fails. No NUL or control bytes.
std::optional<std::string> unescape_name(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    if (c < 0x20 || c == 0x7f) return std::nullopt;
    if (c != '=') {
      out += static_cast<char>(c);
    } else if (in.substr(i + 1, 2) == "2C") {
      out += ',';
      i += 2;
    } else if (in.substr(i + 1, 2) == "3D") {
      out += '=';
      i += 2;
    } else {
      return std::nullopt;
    }
  }
  if (out.empty() || out.size() > kMaxName) return std::nullopt;
  return out;
}

// RFC 5802 7: printable ASCII except ','.
bool valid_nonce(std::string_view n) {
  if (n.empty() || n.size() > 1024) return false;
  for (char c : n)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

std::string client_key_of(std::string_view salted) {
  return hmac_sha256(salted, "Client Key");
}

}  // namespace

ScramKeys scram_keys(std::string_view password, std::string salt, int iterations) {
  ScramKeys k;
  Secret salted(pbkdf2_sha256(password, salt, iterations));
  Secret client_key(client_key_of(salted.view()));
  k.iterations = iterations;
  k.salt = std::move(salt);
  k.stored_key = Secret(sha256(client_key.view()));
  k.server_key = Secret(hmac_sha256(salted.view(), "Server Key"));
  return k;
}

std::string format_scram_keys(const ScramKeys& keys) {
  return fmt::format("{},{},{},{}", keys.iterations, base64_encode(keys.salt),
                     base64_encode(keys.stored_key.view()), base64_encode(keys.server_key.view()));
}

std::optional<ScramKeys> parse_scram_keys(std::string_view text) {
  auto f = split_commas(text);
  unsigned long long iterations = 0;
  if (f.size() != 4 || !parse_u64(f[0], iterations) || iterations < 1 || iterations > 10'000'000)
    return std::nullopt;
  auto salt = base64_decode(f[1]);
  auto stored = base64_decode(f[2]);
  auto server = base64_decode(f[3]);
  if (!salt || salt->empty() || !stored || stored->size() != 32 || !server || server->size() != 32)
    return std::nullopt;
  ScramKeys k;
  k.iterations = static_cast<int>(iterations);
  k.salt = std::move(*salt);
  k.stored_key = Secret(std::move(*stored));
  k.server_key = Secret(std::move(*server));
  return k;
}

bool scram_verify(std::string_view password, const ScramKeys& keys) {
  ScramKeys again = scram_keys(password, keys.salt, keys.iterations);
  // Both comparisons run whatever the first one gives (no early exit to time).
  bool stored = equal(again.stored_key.view(), keys.stored_key.view());
  bool server = equal(again.server_key.view(), keys.server_key.view());
  return stored && server;
}

ScramKeys fake_scram_keys(std::string_view secret, std::string_view user) {
  std::string name = to_lower(user);
  ScramKeys k;
  k.iterations = kScramIterations;
  k.salt = hmac_sha256(secret, "salt\n" + name).substr(0, 16);
  k.stored_key = Secret(hmac_sha256(secret, "stored\n" + name));
  k.server_key = Secret(hmac_sha256(secret, "server\n" + name));
  return k;
}

Scram::Scram(Credentials& credentials, bool plus, std::string channel_binding, std::string server_nonce)
    : credentials_(credentials), plus_(plus), channel_binding_(std::move(channel_binding)) {
  nonce_ = server_nonce.empty() ? base64_encode(random_bytes(18)) : std::move(server_nonce);
}

Step Scram::step(std::string_view response) {
  switch (state_) {
    case State::kFirst:
      state_ = State::kDone;
      return client_first(response);
    case State::kFinal:
      state_ = State::kDone;
      return client_final(response);
    case State::kVerified:
      // RFC 5802 5: the server's signature went out as a challenge; the client answers with nothing.
      state_ = State::kDone;
      if (!response.empty()) return {};
      return {Status::kSuccess, ""};
    case State::kDone:
      break;
  }
  return {};
}

Step Scram::client_first(std::string_view message) {
  // gs2-header: cbind-flag "," [authzid] ","
  size_t c1 = message.find(',');
  if (c1 == std::string_view::npos) return {};
  size_t c2 = message.find(',', c1 + 1);
  if (c2 == std::string_view::npos) return {};
  std::string_view flag = message.substr(0, c1), authzid = message.substr(c1 + 1, c2 - c1 - 1);
  if (plus_) {
    if (flag != "p=tls-exporter" || channel_binding_.empty()) return {};
  } else if (flag == "y") {
    // The client could bind but believes we cannot: we offer -PLUS, so someone removed it (downgrade).
    if (!channel_binding_.empty()) return {};
  } else if (flag != "n") {
    return {};  // "p=..." is only for -PLUS
  }
  gs2_header_ = message.substr(0, c2 + 1);
  client_first_bare_ = message.substr(c2 + 1);
  auto f = split_commas(client_first_bare_);
  // reserved-mext "m=" is a mandatory extension we do not know: fail (RFC 5802 5.1).
  if (f.size() < 2 || !f[0].starts_with("n=") || !f[1].starts_with("r=")) return {};
  auto name = unescape_name(f[0].substr(2));
  std::string_view client_nonce = f[1].substr(2);
  if (!name || !valid_nonce(client_nonce)) return {};
  if (!authzid.empty()) {
    auto z = authzid.starts_with("a=") ? unescape_name(authzid.substr(2)) : std::nullopt;
    if (!z) return {};
    if (*z != *name) return {Status::kAuthzFailed, ""};
  }
  attempted_ = *name;
  keys_ = credentials_.scram_sha256(*name);
  if (keys_.unavailable) return {Status::kUnavailable, ""};
  nonce_ = std::string(client_nonce) + nonce_;
  server_first_ = fmt::format("r={},s={},i={}", nonce_, base64_encode(keys_.salt), keys_.iterations);
  state_ = State::kFinal;
  return {Status::kContinue, server_first_};
}

Step Scram::client_final(std::string_view message) {
  size_t p = message.rfind(",p=");
  if (p == std::string_view::npos) return {};
  std::string_view without_proof = message.substr(0, p);
  auto f = split_commas(without_proof);
  if (f.size() < 2 || !f[0].starts_with("c=") || !f[1].starts_with("r=")) return {};
  auto binding = base64_decode(f[0].substr(2));
  std::string expected = gs2_header_ + (plus_ ? channel_binding_ : std::string());
  if (!binding || !equal(*binding, expected) || f[1].substr(2) != nonce_) return {};
  auto proof = base64_decode(message.substr(p + 3));
  if (!proof || proof->size() != 32) return {};
  std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  Secret client_key(hmac_sha256(keys_.stored_key.view(), auth_message));
  std::string& k = client_key.str();
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<char>(k[i] ^ (*proof)[i]);
  if (!equal(sha256(k), keys_.stored_key.view()) || keys_.user.empty()) return {};
  user_ = keys_.user;
  state_ = State::kVerified;
  return {Status::kContinue, "v=" + base64_encode(hmac_sha256(keys_.server_key.view(), auth_message))};
}

}  // namespace postern::auth::sasl

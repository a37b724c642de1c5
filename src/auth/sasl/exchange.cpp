#include "auth/sasl/exchange.hpp"

#include <algorithm>

#include "auth/sasl/base64.hpp"
#include "auth/sasl/scram.hpp"
#include "auth/sasl/simple.hpp"
#include "base/strings.hpp"

namespace postern::auth::sasl {
namespace {

constexpr std::string_view kKnown[] = {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};

bool plaintext(std::string_view name) {
  return name == "PLAIN" || name == "LOGIN";
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

}  // namespace

bool known_mechanism(std::string_view name) {
  return std::find(std::begin(kKnown), std::end(kKnown), to_upper(name)) != std::end(kKnown);
}

std::vector<std::string> offered_mechanisms(const Options& options) {
  std::vector<std::string> out;
  if (!options.allowed) return out;
  for (const auto& name : options.mechanisms) {
    std::string m = to_upper(name);
    if (plaintext(m) && !options.plaintext_allowed) continue;
    if (m == "SCRAM-SHA-256-PLUS" && options.channel_binding.empty()) continue;
    if (known_mechanism(m) && std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

Options for_connection(Options base, const tls::Info& tls) {
  if (tls.active) {
    base.allowed = base.plaintext_allowed = true;
    base.channel_binding = tls.exporter;
  }
  return base;
}

// Adds the realm to bare login names before the password database sees them.
class Exchange::RealmCredentials : public Credentials {
 public:
  RealmCredentials(Credentials& inner, std::string realm) : inner_(inner), realm_(std::move(realm)) {}
  Verdict verify(std::string_view user, std::string_view password) override {
    return inner_.verify(qualify(user), password);
  }
  ScramKeys scram_sha256(std::string_view user) override { return inner_.scram_sha256(qualify(user)); }
  std::optional<Cleartext> cleartext(std::string_view user) override {
    return inner_.cleartext(qualify(user));
  }

 private:
  std::string qualify(std::string_view user) const {
    if (realm_.empty() || user.find('@') != std::string_view::npos) return std::string(user);
    return std::string(user) + "@" + realm_;
  }
  Credentials& inner_;
  std::string realm_;
};

Exchange::Exchange(Options options, Credentials& credentials)
    : options_(std::move(options)),
      credentials_(std::make_unique<RealmCredentials>(credentials, options_.realm)) {
  for (auto& m : options_.mechanisms) m = to_upper(m);
}

Exchange::~Exchange() = default;

Outcome Exchange::start(std::string_view mechanism, std::optional<std::string_view> initial) {
  mechanism_.reset();
  user_.clear();
  challenge_.clear();
  name_ = to_upper(mechanism);
  auto offer = offered_mechanisms(options_);
  if (std::find(offer.begin(), offer.end(), name_) == offer.end()) {
    bool enabled =
        std::find(options_.mechanisms.begin(), options_.mechanisms.end(), name_) != options_.mechanisms.end();
    bool needs_tls = !options_.allowed || plaintext(name_);
    return enabled && known_mechanism(name_) && needs_tls ? Outcome::kPrivacyRequired
                                                          : Outcome::kUnknownMechanism;
  }
  if (name_ == "PLAIN") {
    mechanism_ = std::make_unique<Plain>(*credentials_);
  } else if (name_ == "LOGIN") {
    mechanism_ = std::make_unique<Login>(*credentials_);
  } else if (name_ == "CRAM-MD5") {
    mechanism_ = std::make_unique<CramMd5>(*credentials_, options_.hostname);
  } else {
    bool plus = name_ == "SCRAM-SHA-256-PLUS";
    mechanism_ = std::make_unique<Scram>(*credentials_, plus, options_.channel_binding);
  }
  if (!initial) {
    Step s = mechanism_->start();
    challenge_ = base64_encode(s.challenge);
    return Outcome::kChallenge;
  }
  if (*initial == "=") return run("");
  auto decoded = base64_decode(*initial);
  if (!decoded) {
    mechanism_.reset();
    return Outcome::kBadBase64;
  }
  Secret response(std::move(*decoded));
  return run(response.view());
}

Outcome Exchange::respond(std::string_view line) {
  if (!mechanism_) return Outcome::kFailed;
  if (line == "*") {
    mechanism_.reset();
    return Outcome::kCancelled;
  }
  auto decoded = base64_decode(line);
  if (!decoded) {
    mechanism_.reset();
    return Outcome::kBadBase64;
  }
  Secret response(std::move(*decoded));
  return run(response.view());
}

Outcome Exchange::run(std::string_view decoded) {
  Step s = mechanism_->step(decoded);
  attempted_ = mechanism_->attempted();
  switch (s.status) {
    case Status::kContinue:
      challenge_ = base64_encode(s.challenge);
      return Outcome::kChallenge;
    case Status::kSuccess:
      user_ = mechanism_->user();
      mechanism_.reset();
      return Outcome::kSuccess;
    case Status::kAuthzFailed:
      mechanism_.reset();
      return Outcome::kAuthzFailed;
    case Status::kUnavailable:
      mechanism_.reset();
      return Outcome::kUnavailable;
    case Status::kFailed:
      break;
  }
  mechanism_.reset();
  return Outcome::kFailed;
}

}  // namespace postern::auth::sasl

#include "dkim/keys.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "auth/sasl/base64.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "mime/headers.hpp"

namespace postern::dkim {
namespace {

constexpr std::string_view kKeySuffix = ".key";

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* pkey) {
  return std::shared_ptr<EVP_PKEY>(pkey, EVP_PKEY_free);
}

// The domain of every address in `from`, if it is one domain.
std::string from_domain(std::string_view content) {
  auto fields = mime::parse_header(content);
  const mime::Field* from = nullptr;
  for (const auto& f : fields) {
    if (!iequals(f.name, "From")) continue;
    if (from) return {};  // RFC 5322 3.6: exactly one
    from = &f;
  }
  if (!from) return {};
  std::string domain;
  for (const auto& addr : mime::parse_address_list(from->value)) {
    size_t at = addr.rfind('@');
    if (at == std::string::npos) return {};
    std::string d = to_lower(addr.substr(at + 1));
    if (!domain.empty() && d != domain) return {};
    domain = d;
  }
  return domain;
}

}  // namespace

std::string key_directory(const std::string& config_dir) {
  return config_dir + "/dkim";
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (std::string_view label : split(name, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return name.back() != '.';
}

std::vector<KeyFile> key_files(const std::string& config_dir) {
  namespace fs = std::filesystem;
  std::vector<KeyFile> out;
  std::error_code ec;
  for (const auto& domain : fs::directory_iterator(key_directory(config_dir), ec)) {
    std::string d = domain.path().filename().string();
    if (!valid_name(d) || !domain.is_directory(ec)) continue;
    std::error_code inner;
    for (const auto& file : fs::directory_iterator(domain.path(), inner)) {
      std::string name = file.path().filename().string();
      if (name.size() <= kKeySuffix.size() || !name.ends_with(kKeySuffix)) continue;
      std::string selector = name.substr(0, name.size() - kKeySuffix.size());
      struct stat st;
      if (!valid_name(selector) || ::stat(file.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      out.push_back({d, selector, file.path().string(), st.st_mtim});
    }
  }
  auto newer = [](const KeyFile& a, const KeyFile& b) {
    if (a.domain != b.domain) return a.domain < b.domain;
    if (a.mtime.tv_sec != b.mtime.tv_sec) return a.mtime.tv_sec > b.mtime.tv_sec;
    if (a.mtime.tv_nsec != b.mtime.tv_nsec) return a.mtime.tv_nsec > b.mtime.tv_nsec;
    return a.selector > b.selector;
  };
  std::sort(out.begin(), out.end(), newer);
  return out;
}

Result<std::shared_ptr<EVP_PKEY>> generate_key(KeyType type) {
  EVP_PKEY* pkey = type == KeyType::kRsa ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                                         : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!pkey) return Error{"key generation failed: " + tls::last_error()};
  return own(pkey);
}

std::string private_key_pem(EVP_PKEY* pkey) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  return pem;
}

Result<std::shared_ptr<EVP_PKEY>> parse_private_key(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!raw) return Error{"no PEM private key in it (" + tls::last_error() + ")"};
  auto pkey = own(raw);
  if (EVP_PKEY_is_a(raw, "RSA")) {
    if (EVP_PKEY_get_bits(raw) < 1024)
      return Error{
          fmt::format("an RSA key of {} bits: DKIM needs at least 1024 (RFC 8301)", EVP_PKEY_get_bits(raw))};
  } else if (!EVP_PKEY_is_a(raw, "ED25519")) {
    return Error{fmt::format("a {} key: DKIM signs with RSA or Ed25519", EVP_PKEY_get0_type_name(raw))};
  }
  return pkey;
}

std::string key_record(EVP_PKEY* pkey) {
  std::string p;
  if (key_type(pkey) == "ed25519") {
    unsigned char raw[32];
    size_t size = sizeof raw;
    EVP_PKEY_get_raw_public_key(pkey, raw, &size);
    p.assign(reinterpret_cast<const char*>(raw), size);
  } else {
    unsigned char* der = nullptr;
    int size = i2d_PUBKEY(pkey, &der);
    p.assign(reinterpret_cast<const char*>(der), static_cast<size_t>(std::max(size, 0)));
    OPENSSL_free(der);
  }
  return fmt::format("v=DKIM1; k={}; p={}", key_type(pkey), auth::sasl::base64_encode(p));
}

std::shared_ptr<const KeyTable> KeyTable::load(const std::string& config_dir, const tls::FileReader& read) {
  auto table = std::make_shared<KeyTable>();
  for (const auto& file : key_files(config_dir)) {
    if (table->keys_.count(file.domain)) continue;  // a newer key of this domain signs
    auto pem = read(file.path);
    auto pkey = pem ? parse_private_key(*pem) : Result<std::shared_ptr<EVP_PKEY>>(pem.error());
    if (!pkey) {
      log::error("dkim", "{}: cannot load the DKIM key: {}", file.path, pkey.error().message);
      continue;
    }
    log::info("dkim", "signing mail from {} with {} (s={}, {})", file.domain, file.path, file.selector,
              key_type(pkey->get()));
    table->keys_[file.domain] = Key{file.domain, file.selector, *pkey};
  }
  return table;
}

const Key* KeyTable::find(std::string_view domain) const {
  auto it = keys_.find(domain);
  return it == keys_.end() ? nullptr : &it->second;
}

std::string KeyTable::sign(const queue::Envelope& env, std::string_view content) const {
  if (!env.trusted_origin || keys_.empty()) return {};
  const Key* key = find(from_domain(content));
  if (!key) return {};
  auto field = dkim::sign(content, *key, env.arrival);
  if (!field) {
    log::warning("dkim", "{}: not signed: {}", env.queue_id, field.error().message);
    return {};
  }
  log::info("dkim", "{}: DKIM-Signature field added (s={}, d={})", env.queue_id, key->selector, key->domain);
  return *field;
}

}  // namespace postern::dkim

#include "tls/server.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <optional>

#include <fmt/format.h>

#include "base/files.hpp"
#include "base/strings.hpp"

namespace postern::tls {
namespace {

// The SMTP services read smtpd_tls_cert_file/smtpd_tls_key_file before the common ssl_ files.
bool is_smtp_service(std::string_view service) {
  return service == "smtp" || service == "submission" || service == "submissions";
}

// Dovecot writes "ssl_cert = </path"; accept the "<" so that a copied line works.
std::string path_value(const config::Config& config, std::string_view key) {
  std::string v = config.get(key);
  if (!v.empty() && v[0] == '<') v.erase(0, 1);
  v = std::string(trim(v));
  if (!v.empty() && v[0] != '/') v = config.dir() + "/" + v;
  return v;
}

std::string self_signed_path(const config::Config& config) {
  return config.get_path("queue_directory") + "/tls/selfsigned.pem";
}

// One certificate and key: the file pair of a service, or one SNI entry.
struct Files {
  std::string cert, key;  // key may be the cert file (both in one PEM)
};

Files general_files(const config::Config& config) {
  Files f{path_value(config, "ssl_cert_file"), path_value(config, "ssl_key_file")};
  if (f.cert.empty()) f.cert = self_signed_path(config);
  if (f.key.empty()) f.key = f.cert;
  return f;
}

std::optional<Files> smtp_files(const config::Config& config) {
  Files f{path_value(config, "smtpd_tls_cert_file"), path_value(config, "smtpd_tls_key_file")};
  if (f.cert.empty()) return std::nullopt;
  if (f.key.empty()) f.key = f.cert;
  return f;
}

// tls_server_sni_maps: "name  file [file...]" lines, Postfix's format: each file holds a key and its chain.
struct SniEntry {
  std::string name;
  Files files;
};

Result<std::vector<SniEntry>> sni_entries(const config::Config& config, const FileReader& read) {
  std::vector<SniEntry> out;
  std::string map = path_value(config, "tls_server_sni_maps");
  if (map.empty()) return out;
  if (auto colon = map.find(':'); colon != std::string::npos && map.find('/') > colon)
    map = map.substr(colon + 1);  // "texthash:/etc/postern/sni" and the like: the text file itself
  auto text = read(map);
  if (!text) return Error{fmt::format("tls_server_sni_maps: {}", text.error().message)};
  int lineno = 0;
  for (std::string_view line : split_lines(*text)) {
    ++lineno;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    auto fields = split_list(line, " \t");
    if (fields.size() < 2)
      return Error{fmt::format("{}, line {}: expected \"hostname  chain-file\"", map, lineno)};
    std::string file(fields[1]);
    if (file[0] != '/') file = config.dir() + "/" + file;
    out.push_back({to_lower(fields[0]), {file, file}});
  }
  return out;
}

BIO* memory_bio(const std::string& pem) {
  return BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
}

// The certificate subject and expiry for the log.
std::string describe_certificate(X509* cert) {
  char subject[256] = "";
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  const ASN1_TIME* not_after = X509_get0_notAfter(cert);
  BIO* b = BIO_new(BIO_s_mem());
  ASN1_TIME_print(b, not_after);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string expiry(data, static_cast<size_t>(n));
  BIO_free(b);
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, nullptr, not_after);
  return fmt::format("{} (expires {}{})", subject, expiry,
                     days < 0 || (days == 0 && secs < 0) ? ", EXPIRED" : "");
}

Result<SSL_CTX*> make_context(const config::Config& config, const Files& files, const FileReader& read,
                              std::string& summary) {
  auto cert_pem = read(files.cert);
  if (!cert_pem) return cert_pem.error();
  auto key_pem = files.key == files.cert ? cert_pem : read(files.key);
  if (!key_pem) return key_pem.error();

  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return Error{"SSL_CTX_new: " + last_error()};
  auto fail = [&](std::string what) -> Result<SSL_CTX*> {
    SSL_CTX_free(ctx);
    return Error{std::move(what)};
  };
  std::string min = config.get("ssl_min_protocol");
  int version = min == "TLSv1.2" ? TLS1_2_VERSION : min == "TLSv1.3" ? TLS1_3_VERSION : 0;
  if (!version) return fail(fmt::format("ssl_min_protocol: \"{}\": must be TLSv1.2 or TLSv1.3", min));
  SSL_CTX_set_min_proto_version(ctx, version);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Thousands of idle IMAP connections: their read and write buffers are released between records.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  std::string ciphers = config.get("ssl_cipher_list");
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1)
    return fail(fmt::format("ssl_cipher_list: \"{}\": {}", ciphers, last_error()));
  static constexpr unsigned char kSessionContext[] = "postern";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);

  BIO* b = memory_bio(*cert_pem);
  X509* leaf = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  if (!leaf) {
    BIO_free(b);
    return fail(fmt::format("{}: no PEM certificate in it", files.cert));
  }
  bool ok = SSL_CTX_use_certificate(ctx, leaf) == 1;
  summary = fmt::format("{}: {}", files.cert, describe_certificate(leaf));
  X509_free(leaf);
  while (ok) {
    X509* extra = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    if (!extra) break;
    ok = SSL_CTX_add0_chain_cert(ctx, extra) == 1;
  }
  ERR_clear_error();  // the loop ends on "no start line"
  BIO_free(b);
  if (!ok) return fail(fmt::format("{}: {}", files.cert, last_error()));

  b = memory_bio(*key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  if (!key) return fail(fmt::format("{}: no PEM private key in it", files.key));
  ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(key);
  if (!ok) return fail(fmt::format("{}: the key does not match {}: {}", files.key, files.cert, last_error()));
  return ctx;
}

}  // namespace

std::string last_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : fmt::format("error {:#x}", e);
}

Result<std::string> read_directly(const std::string& path) {
  return read_file(path);
}

std::vector<std::string> configured_files(const config::Config& config) {
  std::vector<std::string> out;
  auto add = [&](const Files& f) {
    out.push_back(f.cert);
    if (f.key != f.cert) out.push_back(f.key);
  };
  add(general_files(config));
  if (auto f = smtp_files(config)) add(*f);
  std::string map = path_value(config, "tls_server_sni_maps");
  if (!map.empty()) {
    out.push_back(map);
    if (auto entries = sni_entries(config, read_directly))
      for (const auto& e : *entries) add(e.files);
  }
  return out;
}

Result<std::string> ensure_self_signed(const config::Config& config) {
  if (!path_value(config, "ssl_cert_file").empty()) return std::string();
  std::string path = self_signed_path(config);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return path;

  std::string host = config.get("myhostname");
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  auto cleanup = [&] {
    EVP_PKEY_free(key);
    X509_free(cert);
  };
  bool ok = key && cert && X509_set_version(cert, 2) == 1;
  if (ok) {
    unsigned char serial[16];
    ok = RAND_bytes(serial, sizeof serial) == 1;
    serial[0] &= 0x7f;  // a positive serial number
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    ok = ok && bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
  }
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), 0) &&
       X509_gmtime_adj(X509_getm_notAfter(cert), 3650L * 86400);
  ok = ok && X509_set_pubkey(cert, key) == 1;
  X509_NAME* name = X509_get_subject_name(cert);
  ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                        reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1, 0) == 1;
  ok = ok && X509_set_issuer_name(cert, name) == 1;
  if (ok) {
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    std::string san = "DNS:" + host;
    for (auto [nid, value] :
         {std::pair{NID_subject_alt_name, san.c_str()}, std::pair{NID_basic_constraints, "critical,CA:FALSE"},
          std::pair{NID_ext_key_usage, "serverAuth"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      ok = ok && ext && X509_add_ext(cert, ext, -1) == 1;
      X509_EXTENSION_free(ext);
    }
  }
  ok = ok && X509_sign(cert, key, EVP_sha256()) > 0;
  std::string pem;
  if (ok) {
    BIO* b = BIO_new(BIO_s_mem());
    ok = PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
         PEM_write_bio_X509(b, cert) == 1;
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    pem.assign(data, static_cast<size_t>(n));
    BIO_free(b);
  }
  cleanup();
  if (!ok) return Error{"making a self-signed certificate: " + last_error()};
  std::string dir = path.substr(0, path.rfind('/'));
  ::mkdir(dir.c_str(), 0700);
  if (auto st = write_file_atomically(path, pem, 0600); !st) return st.error();
  std::fill(pem.begin(), pem.end(), '\0');
  return path;
}

Contexts::~Contexts() {
  for (SSL_CTX* c : owned_) SSL_CTX_free(c);
}

Result<std::shared_ptr<Contexts>> Contexts::load(const config::Config& config, const FileReader& read) {
  std::shared_ptr<Contexts> out(new Contexts());
  auto add = [&](const Files& f) -> Result<SSL_CTX*> {
    std::string line;
    auto ctx = make_context(config, f, read, line);
    if (!ctx) return ctx.error();
    out->owned_.push_back(*ctx);
    out->summary_.push_back(std::move(line));
    SSL_CTX_set_tlsext_servername_callback(*ctx, &Contexts::on_servername);
    SSL_CTX_set_tlsext_servername_arg(*ctx, out.get());
    return ctx;
  };
  auto general = add(general_files(config));
  if (!general) return general.error();
  out->general_ = out->smtp_ = *general;
  if (auto f = smtp_files(config)) {
    auto smtp = add(*f);
    if (!smtp) return smtp.error();
    out->smtp_ = *smtp;
  }
  auto entries = sni_entries(config, read);
  if (!entries) return entries.error();
  for (const auto& e : *entries) {
    auto ctx = add(e.files);
    if (!ctx) return ctx.error();
    out->sni_.by_name[e.name] = *ctx;
  }
  return out;
}

SSL_CTX* Contexts::context(std::string_view service) const {
  return is_smtp_service(service) ? smtp_ : general_;
}

SSL_CTX* Contexts::Sni::find(std::string_view host) const {
  std::string h = to_lower(host);
  if (auto it = by_name.find(h); it != by_name.end()) return it->second;
  // ".example.org" covers every name below example.org, as Postfix's parent-domain entries do.
  for (size_t dot = h.find('.'); dot != std::string::npos; dot = h.find('.', dot + 1))
    if (auto it = by_name.find(std::string_view(h).substr(dot)); it != by_name.end()) return it->second;
  return nullptr;
}

int Contexts::on_servername(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_NOACK;
  const auto* self = static_cast<const Contexts*>(arg);
  if (SSL_CTX* ctx = self->sni_.find(name)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

Info describe(SSL* ssl) {
  Info info;
  info.active = true;
  info.protocol = SSL_get_version(ssl);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  if (cipher) {
    info.cipher = SSL_CIPHER_get_name(cipher);
    info.bits = SSL_CIPHER_get_bits(cipher, nullptr);
  }
  // RFC 9266 2: tls-exporter needs TLS 1.3, or TLS 1.2 with the extended master secret.
  if (SSL_version(ssl) >= TLS1_3_VERSION || SSL_get_extms_support(ssl) == 1) {
    static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
    unsigned char out[32];
    if (SSL_export_keying_material(ssl, out, sizeof out, kLabel, sizeof kLabel - 1, nullptr, 0, 0) == 1)
      info.exporter.assign(reinterpret_cast<char*>(out), sizeof out);
  }
  return info;
}

}  // namespace postern::tls

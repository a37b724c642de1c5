#include "dkim/signer.hpp"

#include <openssl/sha.h>

#include <fmt/format.h>

#include "auth/sasl/base64.hpp"
#include "base/strings.hpp"
#include "dkim/canon.hpp"
#include "tls/server.hpp"

namespace postern::dkim {
namespace {

constexpr size_t kMaxLine = 78;

constexpr std::string_view kSignedFields[] = {
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-message-id",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
};

// Builds a header field folded before a piece that would pass kMaxLine.
class Folder {
 public:
  explicit Folder(std::string_view start) : out_(start), line_(start.size()) {}
  // `space`: the piece follows a space when it stays on the line (a fold is white space already).
  void add(std::string_view piece, bool space) {
    if (line_ + piece.size() + (space ? 1 : 0) > kMaxLine && line_ > 1) {
      out_ += "\n\t";
      line_ = 1;
    } else if (space) {
      out_ += ' ';
      ++line_;
    }
    out_ += piece;
    line_ += piece.size();
  }
  // Room left on the current line.
  size_t room() const { return line_ < kMaxLine ? kMaxLine - line_ : 0; }
  const std::string& text() const { return out_; }

 private:
  std::string out_;
  size_t line_;
};

struct MdCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~MdCtx() { EVP_MD_CTX_free(ctx); }
};

Result<std::string> body_hash(std::string_view body) {
  MdCtx md;
  if (!md.ctx || EVP_DigestInit_ex(md.ctx, EVP_sha256(), nullptr) != 1)
    return Error{"SHA-256: " + tls::last_error()};
  RelaxedBody canon([&](std::string_view piece) { EVP_DigestUpdate(md.ctx, piece.data(), piece.size()); });
  canon.feed(body);
  canon.finish();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(md.ctx, digest, &size) != 1) return Error{"SHA-256: " + tls::last_error()};
  return auth::sasl::base64_encode({reinterpret_cast<const char*>(digest), size});
}

// RSASSA-PKCS1-v1_5 with SHA-256 over `data`, or (RFC 8463 3) PureEdDSA over the SHA-256 of `data`.
Result<std::string> signature(EVP_PKEY* pkey, std::string_view data) {
  bool ed25519 = key_type(pkey) == "ed25519";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  if (ed25519) {
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    data = {reinterpret_cast<const char*>(digest), sizeof digest};
  }
  MdCtx md;
  size_t size = 0;
  if (!md.ctx || EVP_DigestSignInit(md.ctx, nullptr, ed25519 ? nullptr : EVP_sha256(), nullptr, pkey) != 1 ||
      EVP_DigestSign(md.ctx, nullptr, &size, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1)
    return Error{"signing: " + tls::last_error()};
  std::string sig(size, '\0');
  if (EVP_DigestSign(md.ctx, reinterpret_cast<unsigned char*>(sig.data()), &size,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return Error{"signing: " + tls::last_error()};
  sig.resize(size);
  return auth::sasl::base64_encode(sig);
}

}  // namespace

std::string_view key_type(EVP_PKEY* pkey) {
  return EVP_PKEY_is_a(pkey, "ED25519") ? "ed25519" : "rsa";
}

Result<std::string> sign(std::string_view message, const Key& key,
                         std::chrono::system_clock::time_point now) {
  size_t body_offset = 0;
  std::vector<RawField> fields = split_header(message, body_offset);
  auto bh = body_hash(message.substr(body_offset));
  if (!bh) return bh.error();

  // The hash input (RFC 6376 3.7): each signed field, relaxed, with CR LF; instances of a name from the
  // bottom up; then this field itself with an empty b=, without CR LF.
  std::string data;
  std::vector<std::string_view> names;
  for (std::string_view name : kSignedFields)
    for (auto f = fields.rbegin(); f != fields.rend(); ++f)
      if (iequals(f->name, name)) {
        names.push_back(name);
        data += relaxed_header(f->text);
        data += "\r\n";
      }
  if (names.empty() || names.front() != "from") return Error{"the message has no From field"};
  names.push_back("from");

  Folder field("DKIM-Signature:");
  field.add("v=1;", true);
  field.add(fmt::format("a={}-sha256;", key_type(key.pkey.get())), true);
  field.add("c=relaxed/relaxed;", true);
  field.add(fmt::format("d={};", key.domain), true);
  field.add(fmt::format("s={};", key.selector), true);
  field.add(
      fmt::format("t={};", std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()),
      true);
  for (size_t i = 0; i < names.size(); ++i)
    field.add(fmt::format("{}{}{}", i == 0 ? "h=" : "", names[i], i + 1 == names.size() ? ";" : ":"), i == 0);
  field.add(fmt::format("bh={};", *bh), true);
  field.add("b=", true);
  data += relaxed_header(field.text());
  auto b = signature(key.pkey.get(), data);
  if (!b) return b.error();

  // The signature fills the line and continues on folded lines (white space in b= is not part of it).
  std::string out = field.text();
  std::string_view rest = *b;
  size_t take = std::min(rest.size(), field.room());
  out += rest.substr(0, take);
  for (rest.remove_prefix(take); !rest.empty(); rest.remove_prefix(take)) {
    take = std::min(rest.size(), kMaxLine - 1);
    out += "\n\t";
    out += rest.substr(0, take);
  }
  out += '\n';
  return out;
}

}  // namespace postern::dkim

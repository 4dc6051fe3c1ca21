#include "common/rpc/security.h"

#include <grpcpp/security/auth_metadata_processor.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/util/files.h"

namespace qeff::rpc {
namespace {

// (Debian's abseil has its own string_view: these stay in std.)
std::string_view Trim(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  }
  return true;
}

std::array<unsigned char, 32> Sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  auto text = util::ReadFile(path, 1 << 20);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path, " (", text.status().message(), ")"));
  }
  return text;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

// Every certificate in a PEM text (none: the text holds no PEM certificate).
std::vector<X509Ptr> ParseCerts(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (bio) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (x == nullptr) break;
    out.emplace_back(x);
  }
  ERR_clear_error();
  return out;
}

// Refuses an encrypted key (no prompt on a server) instead of asking for a pass phrase.
int NoPassword(char*, int, int, void*) { return -1; }

// Rejects calls without an accepted bearer token, except the open paths (health).
class TokenProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenProcessor(std::shared_ptr<const TokenSet> tokens) : tokens_(std::move(tokens)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& md, grpc::AuthContext*, OutputMetadata* consumed,
                       OutputMetadata*) override {
    auto path = md.find(":path");
    if (path != md.end() && IsOpenRpcPath(std::string_view(path->second.data(), path->second.size()))) {
      return grpc::Status::OK;
    }
    bool ok = false;
    int seen = 0;
    for (auto [it, end] = md.equal_range("authorization"); it != end; ++it) {
      ++seen;
      ok = tokens_->AcceptsAuthorization(std::string_view(it->second.data(), it->second.size()));
    }
    if (!ok || seen != 1) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kUnauthenticatedMessage);
    // The services never see the token.
    const auto& auth = md.find("authorization")->second;
    consumed->insert({"authorization", std::string(auth.data(), auth.size())});
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<const TokenSet> tokens_;
};

}  // namespace

std::shared_ptr<const TokenSet> TokenSet::FromTokens(const std::vector<std::string>& tokens) {
  auto set = std::make_shared<TokenSet>();
  for (const auto& t : tokens) set->digests_.push_back(Sha256(t));
  return set;
}

absl::StatusOr<std::shared_ptr<const TokenSet>> TokenSet::Load(const std::string& path) {
  auto text = ReadFile("--auth-token-file", path);
  if (!text.ok()) return text.status();
  std::vector<std::string> tokens;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    std::string_view t = Trim(line);
    if (t.empty() || t.front() == '#') continue;
    tokens.emplace_back(t);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-token-file ", path, ": no tokens (one per line; blank lines and #comments are skipped)"));
  }
  return FromTokens(tokens);
}

bool TokenSet::Accepts(std::string_view token) const {
  const auto d = Sha256(token);
  int match = 0;
  for (const auto& a : digests_) match |= CRYPTO_memcmp(a.data(), d.data(), d.size()) == 0;
  return match != 0 && !token.empty();
}

bool TokenSet::AcceptsAuthorization(std::string_view header) const {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() || !StartsWithIgnoreCase(header, kScheme)) {
    return Accepts(std::string_view());  // same work as a wrong token, always false
  }
  return Accepts(Trim(header.substr(kScheme.size())));
}

bool IsOpenRpcPath(std::string_view path) { return path.rfind("/grpc.health.v1.Health/", 0) == 0; }

absl::StatusOr<std::shared_ptr<const TransportSecurity>> LoadTransportSecurity(const std::string& cert_file,
                                                                               const std::string& key_file,
                                                                               const std::string& client_ca_file,
                                                                               const std::string& token_file) {
  auto s = std::make_shared<TransportSecurity>();
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together: pass both (the certificate chain and "
        "its private key, PEM) or neither");
  }
  if (!client_ca_file.empty() && cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS with client certificates)");
  }
  if (!cert_file.empty()) {
    auto cert = ReadFile("--tls-cert", cert_file);
    if (!cert.ok()) return cert.status();
    auto key = ReadFile("--tls-key", key_file);
    if (!key.ok()) return key.status();
    std::vector<X509Ptr> chain = ParseCerts(*cert);
    if (chain.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--tls-cert ", cert_file, ": no PEM certificate in the file"));
    }
    BioPtr bio(BIO_new_mem_buf(key->data(), static_cast<int>(key->size())));
    std::unique_ptr<EVP_PKEY, PkeyDeleter> pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
    ERR_clear_error();
    if (!pkey) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-key ", key_file, ": no unencrypted PEM private key in the file"));
    }
    if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-key ", key_file, " is not the private key of the certificate in --tls-cert ", cert_file));
    }
    if (X509_cmp_current_time(X509_get0_notAfter(chain.front().get())) < 0) {
      spdlog::warn("--tls-cert {}: the certificate has expired; clients will refuse it", cert_file);
    }
    s->cert_file = cert_file;
    s->key_file = key_file;
    s->cert_pem = std::move(*cert);
    s->key_pem = std::move(*key);
  }
  if (!client_ca_file.empty()) {
    auto ca = ReadFile("--tls-client-ca", client_ca_file);
    if (!ca.ok()) return ca.status();
    if (ParseCerts(*ca).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-client-ca ", client_ca_file, ": no PEM CA certificate in the file"));
    }
    s->client_ca_file = client_ca_file;
    s->client_ca_pem = std::move(*ca);
  }
  if (!token_file.empty()) {
    auto tokens = TokenSet::Load(token_file);
    if (!tokens.ok()) return tokens.status();
    s->tokens = std::move(*tokens);
  }
  return std::shared_ptr<const TransportSecurity>(std::move(s));
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TransportSecurity& security) {
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (security.tls()) {
    grpc::SslServerCredentialsOptions opts(security.mtls() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    opts.pem_root_certs = security.client_ca_pem;
    opts.pem_key_cert_pairs.push_back({security.key_pem, security.cert_pem});
    creds = grpc::SslServerCredentials(opts);
  } else if (security.tokens) {
    creds = grpc::experimental::LocalServerCredentials(LOCAL_TCP);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  if (security.tokens) creds->SetAuthMetadataProcessor(std::make_shared<TokenProcessor>(security.tokens));
  return creds;
}

}  // namespace qeff::rpc

namespace qeff::rpc {

bool IsLoopbackListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

absl::Status CheckListenAddress(const TransportSecurity& security, const std::string& flag, const std::string& listen) {
  if (!security.tokens || security.tls() || listen.empty() || IsLoopbackListen(listen)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--auth-token-file without --tls-cert would send bearer tokens in clear text over ", flag, " ",
                   listen, ": add --tls-cert/--tls-key, or listen on loopback (127.0.0.1) only"));
}

}  // namespace qeff::rpc

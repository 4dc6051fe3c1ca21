// Transport security of every qeff listener: TLS / mTLS files and bearer tokens, read and
// checked once at start-up (a bad file ends the process with exit code 2 before it listens),
// then shared by the gRPC server and the HTTP listeners.
//
//   --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]   TLS; mTLS (client certificate
//                                                           required and verified) with a CA
//   --auth-token-file FILE                                   bearer tokens, one per line
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace qeff::rpc {

// The accepted bearer tokens. Only SHA-256 digests are kept; a presented token is hashed and
// compared with every digest in constant time (CRYPTO_memcmp, no early exit), so neither the
// tokens' contents nor their lengths leak through timing.
class TokenSet {
 public:
  // One token per line; blank lines and lines starting with '#' are skipped, surrounding
  // whitespace is trimmed. INVALID_ARGUMENT for an unreadable file or one without tokens.
  static absl::StatusOr<std::shared_ptr<const TokenSet>> Load(const std::string& path);
  static std::shared_ptr<const TokenSet> FromTokens(const std::vector<std::string>& tokens);

  bool Accepts(std::string_view token) const;
  // An "Authorization" header value: "Bearer <token>" (scheme case-insensitive).
  bool AcceptsAuthorization(std::string_view header) const;
  size_t size() const { return digests_.size(); }

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

// The one answer to a missing or wrong token, on gRPC (UNAUTHENTICATED) and HTTP (401): it does
// not say which of the two it was.
inline constexpr char kUnauthenticatedMessage[] =
    "authentication required: send a valid bearer token (authorization: Bearer <token>)";

struct TransportSecurity {
  // TLS (all empty: plaintext). The PEM contents were parsed and the key matches the certificate.
  std::string cert_file, key_file, client_ca_file;
  std::string cert_pem, key_pem, client_ca_pem;
  // Bearer tokens (null: no token check).
  std::shared_ptr<const TokenSet> tokens;

  bool tls() const { return !cert_file.empty(); }
  bool mtls() const { return !client_ca_file.empty(); }
};

// Validates the flag combination and the files (readable, PEM, key matching the certificate,
// at least one CA certificate, at least one token). INVALID_ARGUMENT with a message naming the
// flag and the file otherwise.
absl::StatusOr<std::shared_ptr<const TransportSecurity>> LoadTransportSecurity(const std::string& cert_file,
                                                                               const std::string& key_file,
                                                                               const std::string& client_ca_file,
                                                                               const std::string& token_file);

// gRPC credentials of the main listener: SslServerCredentials (requiring and verifying a client
// certificate under mTLS) or plaintext, with the token check (an AuthMetadataProcessor that
// lets grpc.health.v1 through) when tokens are set. gRPC runs metadata processors only on
// authenticated transports, so tokens without TLS use local credentials (plaintext, loopback
// peers only): CheckListenAddress refuses that combination on other addresses.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TransportSecurity& security);

// HOST:PORT on a loopback host (127.0.0.0/8, ::1, localhost).
bool IsLoopbackListen(const std::string& listen);
// Bearer tokens over plaintext only on loopback: elsewhere they would cross the network in
// clear text. INVALID_ARGUMENT naming `flag` otherwise.
absl::Status CheckListenAddress(const TransportSecurity& security, const std::string& flag, const std::string& listen);

// True for the RPC paths that stay open without a token (grpc.health.v1, for probes).
bool IsOpenRpcPath(std::string_view path);

}  // namespace qeff::rpc

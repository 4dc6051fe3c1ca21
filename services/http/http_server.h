// An HTTP listener on cpp-httplib: the OpenAI-compatible API, /health and /metrics, or (for
// gRPC-only deployments) /metrics alone. It binds at Start (port 0 picks a free port) and serves
// on its own thread until Stop.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/rpc/security.h"
#include "services/http/readiness.h"
#include "services/runner/model_registry.h"

namespace httplib {
class Server;
}

namespace qeff::http {

class OpenAiApi;

struct HttpServerOptions {
  std::string listen;         // HOST:PORT ([v6]:PORT); port 0 = any free port
  bool api = true;            // false: /metrics only
  // Bigger bodies get 413 before they are read: 8 MiB holds any prompt the runner takes (4 MiB
  // of text) with room for JSON escaping.
  size_t max_body_bytes = 8u << 20;
  // Concurrent connections served; a stream holds one for its whole life.
  int threads = 128;
  // TLS / mTLS (cpp-httplib's SSLServer) and bearer tokens (every route but /health answers 401
  // without an accepted "Authorization: Bearer"); null: plaintext, no tokens.
  std::shared_ptr<const rpc::TransportSecurity> security;
};

class HttpServer {
 public:
  // Binds and starts serving. INVALID_ARGUMENT for a malformed address, UNAVAILABLE when the
  // port cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           runner::ModelRegistry* registry,
                                                           std::shared_ptr<const Readiness> readiness);
  ~HttpServer();  // Stop()

  // The bound HOST:PORT.
  const std::string& address() const { return address_; }
  // Ends open streams (their requests are cancelled), stops accepting and joins. Idempotent.
  void Stop();

 private:
  HttpServer() = default;
  void Route(const HttpServerOptions& options);

  runner::ModelRegistry* registry_ = nullptr;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<OpenAiApi> api_;
  std::shared_ptr<const Readiness> readiness_;
  std::atomic<bool> stopping_{false};
  std::string address_;
  std::thread thread_;
};

// Splits "HOST:PORT" / "[V6]:PORT" (INVALID_ARGUMENT otherwise).
absl::Status SplitHostPort(const std::string& listen, std::string* host, int* port);

}  // namespace qeff::http

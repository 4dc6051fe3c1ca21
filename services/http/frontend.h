// What qeffd and qeff-runner run beside their gRPC services: the models named with --serve
// (exported, compiled and loaded on a background thread at start-up), the OpenAI-compatible
// HTTP API (--http-listen) and the /metrics-only listener (--metrics-listen).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rpc/server_main.h"
#include "services/http/http_server.h"
#include "services/http/readiness.h"
#include "services/http/serve_spec.h"

namespace qeff::http {

class Frontend {
 public:
  // Parses every --serve spec (INVALID_ARGUMENT on the first bad one, before anything starts),
  // binds the listeners (printing "http listening on HOST:PORT" / "metrics listening on
  // HOST:PORT" on stdout, before the gRPC server's line) and starts loading. A model that fails
  // to load calls `on_failure` (the process should stop: it cannot serve what it was asked to);
  // `on_ready` runs once all have loaded. `security`: TLS and tokens of both listeners.
  static absl::StatusOr<std::unique_ptr<Frontend>> Start(artifacts::Store* store, runner::ModelRegistry* registry,
                                                         const std::string& http_listen,
                                                         const std::string& metrics_listen,
                                                         const std::vector<std::string>& serve,
                                                         std::function<void(absl::Status)> on_failure,
                                                         std::shared_ptr<const rpc::TransportSecurity> security = {},
                                                         std::function<void()> on_ready = {});
  ~Frontend();  // Stop()

  // Stops the listeners (open streams end, their requests are cancelled) and waits for the
  // loader to finish the stage it is in. Idempotent.
  void Stop();

 private:
  Frontend() = default;

  std::shared_ptr<Readiness> readiness_;
  std::unique_ptr<HttpServer> http_, metrics_;
  std::atomic<bool> stop_{false};
  std::thread loader_;
};

// For a binary's service factory: starts a Frontend from the server flags when any of them is
// set, keeps it in `owned` and stops it on SIGTERM with the gRPC server.
absl::Status AddFrontend(const rpc::ServerContextArgs& args, runner::ModelRegistry* registry,
                         std::vector<std::shared_ptr<void>>& owned);

}  // namespace qeff::http

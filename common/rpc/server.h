// Server bootstrap shared by qeff-exporter, qeff-compiler, qeff-runner and qeffd.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace qeff::rpc {

struct ServerConfig {
  // host:port; port 0 picks a free port (printed on stdout as "listening on host:port").
  std::string listen = "127.0.0.1:50051";
  std::string cache_dir;
  // Largest request/response message accepted, in MiB.
  int max_message_mb = 64;
  // Called on SIGTERM/SIGINT before the gRPC server drains: stops listeners that run beside it
  // (the HTTP API, /metrics) so the whole process goes down together.
  std::function<void()> on_stop;
};

// A service to serve plus its fully qualified name (for grpc.health.v1).
struct ServiceEntry {
  grpc::Service* service;
  std::string name;
};

// Starts the server with health checking and reflection, prints the bound address, and blocks
// until SIGTERM or SIGINT; then stops accepting calls and drains running ones (10 s grace).
// The signal handler only writes to a pipe (libraries such as OpenBLAS start threads before
// main, so blocking signals per thread cannot work); a waiter thread does the shutdown.
int RunServer(const ServerConfig& config, const std::vector<ServiceEntry>& services);

// Makes RunServer stop as on SIGTERM (now, or as soon as it runs): for a failure found after
// start-up, such as a model that cannot be loaded. Safe from any thread.
void RequestShutdown();

// absl and gRPC share the canonical status codes.
grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace qeff::rpc

// Server bootstrap shared by qeff-exporter, qeff-compiler, qeff-runner and qeffd.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/rpc/security.h"

namespace qeff::rpc {

// The grpc.health.v1 statuses of one process, mirrored into every health service that serves
// them (the main listener and the plaintext --health-listen one), so both always agree. A
// service that was never set reports SERVING once the main server runs (RunServer sets it);
// the overall status "" is SERVING while the process runs. After Drain everything is
// NOT_SERVING for good. Thread-safe.
class HealthBoard {
 public:
  void Set(const std::string& service, bool serving);
  // Set unless the service already has a status (RunServer: SERVING for what no one set).
  void SetIfUnset(const std::string& service, bool serving);
  void Attach(grpc::HealthCheckServiceInterface* health);
  void Detach(grpc::HealthCheckServiceInterface* health);
  // SIGTERM: every service and "" NOT_SERVING from now on.
  void Drain();

 private:
  std::mutex mu_;
  std::map<std::string, bool> status_;
  std::vector<grpc::HealthCheckServiceInterface*> targets_;
  bool draining_ = false;
};

struct ServerConfig {
  // host:port; port 0 picks a free port (printed on stdout as "listening on host:port").
  std::string listen = "127.0.0.1:50051";
  std::string cache_dir;
  // Largest request/response message accepted, in MiB.
  int max_message_mb = 64;
  // Called on SIGTERM/SIGINT before the gRPC server drains: stops listeners that run beside it
  // (the HTTP API, /metrics) so the whole process goes down together.
  std::function<void()> on_stop;
  // TLS / mTLS and bearer tokens of the listener (null: plaintext, no tokens).
  std::shared_ptr<const TransportSecurity> security;
  // grpc.reflection.v1alpha (grpcurl's discovery); --no-reflection turns it off.
  bool reflection = true;
  // The process's health statuses (null: a board of its own).
  std::shared_ptr<HealthBoard> health;
};

// A service to serve plus its fully qualified name (for grpc.health.v1).
struct ServiceEntry {
  grpc::Service* service;
  std::string name;
};

// Routes SIGTERM/SIGINT into a pipe that RunServer's waiter reads, so a signal that arrives
// before the server is up (while --serve models load) still stops it cleanly. Idempotent;
// RunServer calls it too. The handler only writes to a pipe (libraries such as OpenBLAS start
// threads before main, so blocking signals per thread cannot work).
bool InstallTerminationHandler();

// Starts the server with health checking and reflection, prints the bound address, and blocks
// until SIGTERM or SIGINT; then stops accepting calls and drains running ones (10 s grace).
int RunServer(const ServerConfig& config, const std::vector<ServiceEntry>& services);

// A plaintext gRPC server with grpc.health.v1 only (no other service, no reflection, no token)
// whose statuses mirror `board`: for probes that cannot speak TLS (Kubernetes' gRPC probe).
// `address` gets the bound HOST:PORT (port 0 picks a free one).
class HealthServer {
 public:
  static absl::StatusOr<std::unique_ptr<HealthServer>> Start(const std::string& listen,
                                                             std::shared_ptr<HealthBoard> board);
  ~HealthServer();  // Stop()
  const std::string& address() const { return address_; }
  void Stop();

 private:
  HealthServer() = default;
  std::shared_ptr<HealthBoard> board_;
  // Answers UNIMPLEMENTED for every other method (and gives gRPC the polled queue a server
  // needs when its only service is the built-in health service).
  std::unique_ptr<grpc::CallbackGenericService> unimplemented_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// Makes RunServer stop as on SIGTERM (now, or as soon as it runs): for a failure found after
// start-up, such as a model that cannot be loaded. Safe from any thread.
void RequestShutdown();

// absl and gRPC share the canonical status codes.
grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace qeff::rpc

#include "common/rpc/server.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

namespace qeff::rpc {
namespace {

int g_signal_pipe[2] = {-1, -1};
std::atomic<bool> g_shutdown_requested{false};
std::atomic<bool> g_pipe_ready{false};

void OnTerminationSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &b, 1);
}

// Routes SIGTERM/SIGINT into a pipe; returns false if that cannot be set up.
bool InstallTerminationHandler() {
  if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) return false;
  struct sigaction sa = {};
  sa.sa_handler = OnTerminationSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  return ::sigaction(SIGTERM, &sa, nullptr) == 0 && ::sigaction(SIGINT, &sa, nullptr) == 0;
}

}  // namespace

void RequestShutdown() {
  g_shutdown_requested.store(true);
  if (g_pipe_ready.load()) OnTerminationSignal(SIGTERM);
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

int RunServer(const ServerConfig& config, const std::vector<ServiceEntry>& services) {
  if (!InstallTerminationHandler()) {
    spdlog::error("cannot install the SIGTERM handler");
    return 2;
  }
  g_pipe_ready.store(true);
  if (g_shutdown_requested.load()) OnTerminationSignal(SIGTERM);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(config.max_message_mb << 20);
  builder.SetMaxSendMessageSize(config.max_message_mb << 20);
  for (const auto& s : services) builder.RegisterService(s.service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("cannot listen on {} (address in use or invalid?)", config.listen);
    return 2;
  }
  for (const auto& s : services) server->GetHealthCheckService()->SetServingStatus(s.name, true);

  std::string host = config.listen.substr(0, config.listen.rfind(':'));
  std::printf("listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  spdlog::info("serving {} service(s) on {}:{} cache={}", services.size(), host, port, config.cache_dir);

  std::thread waiter([&server, &config] {
    unsigned char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    spdlog::info("signal {}: draining calls and stopping", sig);
    if (config.on_stop) config.on_stop();
    server->GetHealthCheckService()->SetServingStatus(false);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  });
  server->Wait();
  waiter.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace qeff::rpc

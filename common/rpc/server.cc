#include "common/rpc/server.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

namespace qeff::rpc {
namespace {

int g_signal_pipe[2] = {-1, -1};
std::atomic<bool> g_shutdown_requested{false};
std::atomic<bool> g_pipe_ready{false};
std::mutex g_install_mu;

void OnTerminationSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &b, 1);
}

// Drops grpc.reflection from a builder's plugins (the reflection library registers its plugin
// for every server at load time, so not calling InitProtoReflectionServerBuilderPlugin is not
// enough).
class WithoutReflection : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const auto& p) { return p->name() == "proto_server_reflection"; }),
                   plugins->end());
  }
};

// One listening socket per --listen: gRPC's default SO_REUSEPORT made a clone of the listener
// per poller, which for port 0 bound a second, unprinted free port (and let a second server
// bind a port already in use without an error).
void OneSocketPerPort(grpc::ServerBuilder& builder) { builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0); }

// "HOST:PORT" of a --listen value with the bound port.
std::string BoundAddress(const std::string& listen, int port) {
  return listen.substr(0, listen.rfind(':')) + ":" + std::to_string(port);
}

}  // namespace

bool InstallTerminationHandler() {
  std::lock_guard<std::mutex> l(g_install_mu);
  if (g_pipe_ready.load()) return true;
  if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) return false;
  struct sigaction sa = {};
  sa.sa_handler = OnTerminationSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (::sigaction(SIGTERM, &sa, nullptr) != 0 || ::sigaction(SIGINT, &sa, nullptr) != 0) return false;
  g_pipe_ready.store(true);
  if (g_shutdown_requested.load()) OnTerminationSignal(SIGTERM);
  return true;
}

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

void HealthBoard::Set(const std::string& service, bool serving) {
  std::lock_guard<std::mutex> l(mu_);
  if (draining_) return;
  status_[service] = serving;
  for (auto* t : targets_) t->SetServingStatus(service, serving);
}

void HealthBoard::SetIfUnset(const std::string& service, bool serving) {
  std::lock_guard<std::mutex> l(mu_);
  if (draining_ || status_.count(service) > 0) return;
  status_[service] = serving;
  for (auto* t : targets_) t->SetServingStatus(service, serving);
}

void HealthBoard::Attach(grpc::HealthCheckServiceInterface* health) {
  if (health == nullptr) return;
  std::lock_guard<std::mutex> l(mu_);
  targets_.push_back(health);
  if (draining_) {
    health->SetServingStatus(false);
    return;
  }
  for (const auto& [name, serving] : status_) health->SetServingStatus(name, serving);
}

void HealthBoard::Detach(grpc::HealthCheckServiceInterface* health) {
  std::lock_guard<std::mutex> l(mu_);
  targets_.erase(std::remove(targets_.begin(), targets_.end(), health), targets_.end());
}

void HealthBoard::Drain() {
  std::lock_guard<std::mutex> l(mu_);
  draining_ = true;
  for (auto& [name, serving] : status_) serving = false;
  for (auto* t : targets_) t->SetServingStatus(false);
}

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(const std::string& listen,
                                                                  std::shared_ptr<HealthBoard> board) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  OneSocketPerPort(builder);
  builder.SetOption(std::make_unique<WithoutReflection>());
  builder.SetMaxReceiveMessageSize(4 << 10);  // a HealthCheckRequest is a service name
  std::unique_ptr<HealthServer> h(new HealthServer());
  h->unimplemented_ = std::make_unique<grpc::CallbackGenericService>();
  builder.RegisterCallbackGenericService(h->unimplemented_.get());
  h->server_ = builder.BuildAndStart();
  if (!h->server_ || port == 0) {
    return absl::UnavailableError("cannot listen on --health-listen " + listen + " (address in use or invalid?)");
  }
  h->board_ = std::move(board);
  h->board_->Attach(h->server_->GetHealthCheckService());
  h->address_ = BoundAddress(listen, port);
  return h;
}

void HealthServer::Stop() {
  if (!server_) return;
  board_->Detach(server_->GetHealthCheckService());
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
  server_.reset();
}

HealthServer::~HealthServer() { Stop(); }

int RunServer(const ServerConfig& config, const std::vector<ServiceEntry>& services) {
  if (!InstallTerminationHandler()) {
    spdlog::error("cannot install the SIGTERM handler");
    return 2;
  }
  grpc::EnableDefaultHealthCheckService(true);
  std::shared_ptr<HealthBoard> board = config.health ? config.health : std::make_shared<HealthBoard>();

  grpc::ServerBuilder builder;
  int port = 0;
  std::shared_ptr<grpc::ServerCredentials> creds =
      config.security ? MakeServerCredentials(*config.security) : grpc::InsecureServerCredentials();
  builder.AddListeningPort(config.listen, creds, &port);
  OneSocketPerPort(builder);
  if (config.reflection) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  } else {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  builder.SetMaxReceiveMessageSize(config.max_message_mb << 20);
  builder.SetMaxSendMessageSize(config.max_message_mb << 20);
  for (const auto& s : services) builder.RegisterService(s.service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("cannot listen on {} (address in use or invalid?)", config.listen);
    return 2;
  }
  for (const auto& s : services) board->SetIfUnset(s.name, true);
  board->Attach(server->GetHealthCheckService());

  const std::string address = BoundAddress(config.listen, port);
  std::printf("listening on %s\n", address.c_str());
  std::fflush(stdout);
  const TransportSecurity* sec = config.security.get();
  spdlog::info("serving {} service(s) on {} ({}{}{}) cache={}", services.size(), address,
               sec && sec->tls() ? (sec->mtls() ? "mTLS" : "TLS") : "plaintext",
               sec && sec->tokens ? ", bearer tokens" : "", config.reflection ? ", reflection" : "", config.cache_dir);

  std::thread waiter([&server, &config, &board] {
    unsigned char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    spdlog::info("signal {}: draining calls and stopping", sig);
    board->Drain();
    if (config.on_stop) config.on_stop();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  });
  server->Wait();
  waiter.join();
  board->Detach(server->GetHealthCheckService());
  spdlog::info("stopped");
  return 0;
}

}  // namespace qeff::rpc

// qeff-runner: the Runner service alone.
#include "common/rpc/server_main.h"
#include "services/runner/runner_service.h"

int main(int argc, char** argv) {
  return qeff::rpc::ServerMain(argc, argv, "qeff-runner", [](const auto& args, auto& owned) {
    auto registry = std::make_shared<qeff::runner::ModelRegistry>(
        args.store, qeff::runner::RegistryOptions{args.threads, args.max_queued_requests, args.max_active_slots});
    auto svc = std::make_shared<qeff::runner::RunnerService>(registry.get());
    owned.push_back(registry);
    owned.push_back(svc);
    return std::vector<qeff::rpc::ServiceEntry>{{svc.get(), "qeff.v1.Runner"}};
  }, /*runner=*/true);
}

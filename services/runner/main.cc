// qeff-runner: the Runner service alone. With --http-listen it also serves the OpenAI-compatible
// HTTP API on the same engine; --serve exports, compiles and loads models at start-up (in-process,
// into the shared cache).
#include "common/rpc/server_main.h"
#include "services/http/frontend.h"
#include "services/runner/runner_service.h"

int main(int argc, char** argv) {
  return qeff::rpc::ServerMain(
      argc, argv, "qeff-runner",
      [](const auto& args, auto& owned) -> absl::StatusOr<std::vector<qeff::rpc::ServiceEntry>> {
        auto registry = std::make_shared<qeff::runner::ModelRegistry>(
            args.store, qeff::runner::RegistryOptions{args.threads, args.max_queued_requests, args.max_active_slots,
                                           args.max_loaded_models, args.max_weight_bytes});
        auto svc = std::make_shared<qeff::runner::RunnerService>(registry.get());
        owned.push_back(registry);
        owned.push_back(svc);
        if (absl::Status s = qeff::http::AddFrontend(args, registry.get(), owned); !s.ok()) return s;
        return std::vector<qeff::rpc::ServiceEntry>{{svc.get(), "qeff.v1.Runner"}};
      },
      /*runner=*/true);
}

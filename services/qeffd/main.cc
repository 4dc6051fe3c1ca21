// qeffd: exporter, compiler and runner in one process on one port — the one-machine default.
// With --http-listen it also serves the OpenAI-compatible HTTP API on the same engine, and
// --serve exports, compiles and loads models at start-up.
#include "common/rpc/server_main.h"
#include "services/compiler/compiler_service.h"
#include "services/exporter/exporter_service.h"
#include "services/http/frontend.h"
#include "services/runner/runner_service.h"

int main(int argc, char** argv) {
  return qeff::rpc::ServerMain(
      argc, argv, "qeffd",
      [](const auto& args, auto& owned) -> absl::StatusOr<std::vector<qeff::rpc::ServiceEntry>> {
        auto exporter = std::make_shared<qeff::exporter::ExporterService>(args.store, args.model_roots);
        auto compiler = std::make_shared<qeff::compiler::CompilerService>(args.store);
        auto registry = std::make_shared<qeff::runner::ModelRegistry>(
            args.store, qeff::runner::RegistryOptions{args.threads, args.max_queued_requests, args.max_active_slots,
                                           args.max_loaded_models, args.max_weight_bytes});
        auto runner = std::make_shared<qeff::runner::RunnerService>(registry.get());
        owned.insert(owned.end(), {exporter, compiler, registry, runner});
        if (absl::Status s = qeff::http::AddFrontend(args, registry.get(), owned); !s.ok()) return s;
        return std::vector<qeff::rpc::ServiceEntry>{{exporter.get(), "qeff.v1.Exporter"},
                                                    {compiler.get(), "qeff.v1.Compiler"},
                                                    {runner.get(), "qeff.v1.Runner"}};
      },
      /*runner=*/true, /*exporter=*/true);
}

// qeff-exporter: the Exporter service alone.
#include "common/rpc/server_main.h"
#include "services/exporter/exporter_service.h"

int main(int argc, char** argv) {
  return qeff::rpc::ServerMain(argc, argv, "qeff-exporter", [](const auto& args, auto& owned) {
    auto svc = std::make_shared<qeff::exporter::ExporterService>(args.store, args.model_roots);
    owned.push_back(svc);
    return std::vector<qeff::rpc::ServiceEntry>{{svc.get(), "qeff.v1.Exporter"}};
  }, /*runner=*/false, /*exporter=*/true);
}

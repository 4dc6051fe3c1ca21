// qeff-compiler: the Compiler service alone.
#include "common/rpc/server_main.h"
#include "services/compiler/compiler_service.h"

int main(int argc, char** argv) {
  return qeff::rpc::ServerMain(argc, argv, "qeff-compiler", [](const auto& args, auto& owned) {
    auto svc = std::make_shared<qeff::compiler::CompilerService>(args.store);
    owned.push_back(svc);
    return std::vector<qeff::rpc::ServiceEntry>{{svc.get(), "qeff.v1.Compiler"}};
  });
}

// The shared main() of every qeff server binary: flags, cache, logging, serve until SIGTERM.
//
//   <binary> --listen ADDR --cache-dir DIR [--threads N] [--max-message-mb N] [--log-level L]
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/artifacts/store.h"
#include "common/rpc/server.h"

namespace qeff::rpc {

struct ServerContextArgs {
  artifacts::Store* store;
  int threads;  // device threads for runners (0 = all cores)
};

// Creates the services to serve; they must outlive the call (keep them in `owned`).
using ServiceFactory = std::function<std::vector<ServiceEntry>(
    const ServerContextArgs& args, std::vector<std::shared_ptr<void>>& owned)>;

int ServerMain(int argc, char** argv, const std::string& program_name, const ServiceFactory& make_services);

}  // namespace qeff::rpc

// The shared main() of every qeff server binary: flags, cache, logging, serve until SIGTERM.
//
//   <binary> --listen ADDR --cache-dir DIR [--threads N] [--max-message-mb N] [--log-level L]
//   runners also: [--max-queued-requests N] [--max-active-slots N]
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
  // Runners: generation requests that may wait for a KV slot per model, and the KV slots each
  // model uses (0 = all its qpc has).
  int max_queued_requests;
  int max_active_slots;
};

// Creates the services to serve; they must outlive the call (keep them in `owned`).
using ServiceFactory = std::function<std::vector<ServiceEntry>(
    const ServerContextArgs& args, std::vector<std::shared_ptr<void>>& owned)>;

// `runner`: the binary serves the Runner, so it takes the runner's flags.
int ServerMain(int argc, char** argv, const std::string& program_name, const ServiceFactory& make_services,
               bool runner = false);

}  // namespace qeff::rpc

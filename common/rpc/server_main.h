// The shared main() of every qeff server binary: flags, cache, logging, serve until SIGTERM.
//
//   <binary> --listen ADDR --cache-dir DIR [--threads N] [--max-message-mb N] [--log-level L]
//            [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [--auth-token-file FILE]
//            [--no-reflection] [--health-listen HOST:PORT]
//   exporters also: [--model-root DIR]...
//   runners also: [--max-queued-requests N] [--max-active-slots N]
//                 [--http-listen HOST:PORT] [--metrics-listen HOST:PORT]
//                 [--serve 'MODEL[,id=NAME][,ctx_len=N][,prefill_seq_len=N][,full_batch_size=N][,weight_dtype=T][,kv_cache_dtype=T]']...
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/artifacts/store.h"
#include "common/hf/model_roots.h"
#include "common/rpc/server.h"

namespace qeff::rpc {

struct ServerContextArgs {
  artifacts::Store* store;
  int threads;  // device threads for runners (0 = all cores)
  // Runners: generation requests that may wait for a KV slot per model, and the KV slots each
  // model uses (0 = all its qpc has).
  int max_queued_requests;
  int max_active_slots;
  // Runners: the OpenAI-compatible HTTP API (empty = off), a /metrics-only listener for
  // gRPC-only deployments (empty = off), and the --serve specs (unparsed; the runner validates).
  std::string http_listen;
  std::string metrics_listen;
  std::vector<std::string> serve;
  // Servers with an Exporter: folders Export may read (--model-root; empty = any).
  hf::ModelRoots model_roots;
  // Hooks run on SIGTERM/SIGINT (and when start-up fails) before the gRPC server drains, in order.
  std::vector<std::function<void()>>* on_stop;
  // A failure after start-up that should end the process (a --serve model that cannot be
  // loaded): logged by the caller, then the server stops as on SIGTERM and exits with 1.
  std::function<void(absl::Status)> fail;
  // TLS / mTLS and bearer tokens from the flags, for listeners beside the gRPC server (the HTTP
  // API, /metrics); never null (empty: plaintext, no tokens).
  std::shared_ptr<const TransportSecurity> security;
  // Runners with --serve: call once every --serve model is loaded. qeff.v1.Runner's health is
  // NOT_SERVING from start-up until then (on every health listener), SERVING after.
  std::function<void()> runner_ready;
  // Runners: caps on loaded model ids and on the weight bytes of their qpcs (--max-loaded-models,
  // --max-weight-gb).
  int max_loaded_models = 64;
  uint64_t max_weight_bytes = 0;
};

// Creates the services to serve; they must outlive the call (keep them in `owned`). An error
// (e.g. a bad --serve spec, an HTTP port in use) ends the process before it listens.
using ServiceFactory = std::function<absl::StatusOr<std::vector<ServiceEntry>>(
    const ServerContextArgs& args, std::vector<std::shared_ptr<void>>& owned)>;

// `runner` / `exporter`: the binary serves the Runner / the Exporter, so it takes their flags.
int ServerMain(int argc, char** argv, const std::string& program_name, const ServiceFactory& make_services,
               bool runner = false, bool exporter = false);

}  // namespace qeff::rpc

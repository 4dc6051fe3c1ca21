// --serve 'MODEL[,id=NAME][,ctx_len=N][,prefill_seq_len=N][,full_batch_size=N][,weight_dtype=T][,kv_cache_dtype=T]':
// a model to export (continuous batching when full_batch_size > 0), compile (cache hits when the
// artifacts exist) and load at start-up.
#pragma once

#include <atomic>
#include <string>

#include "absl/status/statusor.h"
#include "common/artifacts/store.h"
#include "services/runner/model_registry.h"

namespace qeff::http {

struct ServeSpec {
  std::string model;  // HF folder or org/name, as given
  std::string id;     // default: model
  int ctx_len = 0;          // 0: the compiler's default
  int prefill_seq_len = 0;  // 0: the compiler's default (encoders: the compiled seq_len)
  int full_batch_size = 0;  // > 0: continuous batching with this many KV slots
  std::string weight_dtype;  // empty: fp32
  std::string kv_cache_dtype;  // empty: fp32
};

// INVALID_ARGUMENT naming the spec and what is wrong with it. Checks the syntax and the options
// (compiler::ValidateOptions), and that MODEL resolves to a folder with a config.json.
absl::StatusOr<ServeSpec> ParseServeSpec(const std::string& text);

// Export, compile and load `spec` into `registry` (the work the gRPC Exporter, Compiler and
// Runner.Load do, in-process). `stop` is checked between the stages.
absl::Status ServeModel(artifacts::Store& store, runner::ModelRegistry& registry, const ServeSpec& spec,
                        const std::atomic<bool>& stop);

}  // namespace qeff::http

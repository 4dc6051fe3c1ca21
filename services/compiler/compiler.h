// The compiler: an exported ONNX graph -> a qpc for one target and one set of shapes.
//
// target "cpu": specializes the graph per shape set (Prefill: seq_len = prefill_seq_len,
// Decode: seq_len = 1), runs the IR passes and writes program.pb + weights.bin.
// targets "qaic" / "qnn": write QEfficient's specializations.json and custom_io.yaml and run
// the SDK compiler when it is installed (FAILED_PRECONDITION naming the command otherwise).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace qeff::compiler {

// Bumped whenever the bytes a compile produces change for the same inputs.
inline constexpr int kCompilerFormatVersion = 3;  // 3: Linear weight panels, int4

struct CompileOptions {
  std::string target = "cpu";
  int batch_size = 1;
  int prefill_seq_len = 32;
  int ctx_len = 128;
  int num_cores = 0;                // cpu: runtime threads (0 = all cores)
  std::string weight_dtype = "fp32";  // fp32 | bf16 | int8 | int4 (Linear and MoE expert weights)
  int full_batch_size = 0;          // continuous batching slots (0 = off); needs a CB export
  std::string kv_cache_dtype = "fp32";  // fp32 | bf16 (the retained KV state)
};

absl::Status ValidateOptions(const CompileOptions& options);

class OnnxModel;
// Graph input X paired with output X_RetainedState (a causal LM's KV cache).
bool HasRetainedState(const OnnxModel& model);
// The export was made for continuous batching (it takes `batch_index`).
bool HasBatchIndex(const OnnxModel& model);

// What the graph is, as far as specializations go.
struct ModelKind {
  bool causal = false;               // retained KV state
  bool continuous_batching = false;  // batch_index input
};
ModelKind KindOf(const OnnxModel& model);

// INVALID_ARGUMENT when the options do not fit the export: full_batch_size without a
// continuous-batching export or the other way round, or a ctx_len beyond the model's max
// positions (the export's `max_positions` metadata), naming both numbers.
absl::Status ValidateForModel(const CompileOptions& options, const ModelKind& kind, const OnnxModel& model);

struct SpecializationSummary {
  std::string name;
  int batch_size = 0, seq_len = 0, ctx_len = 0;  // ctx_len 0 for encoders
  int full_batch_size = 0;                       // continuous batching only
};

// Causal LMs: Prefill (seq_len = prefill_seq_len) and Decode (seq_len = 1) at ctx_len;
// encoders: one Embedding specialization at seq_len = prefill_seq_len. Continuous batching
// (QEfficient's CB specializations): Prefill at batch_size 1 and Decode at batch_size =
// full_batch_size, both with full_batch_size; with `decode_batch_ladder` (the cpu target) also
// Decode_bs<b> for b = 1, 2, 4, ... below full_batch_size, so a step costs what its active
// sequences need rather than all slots.
std::vector<SpecializationSummary> PlanSpecializations(const CompileOptions& options, const ModelKind& kind,
                                                       bool decode_batch_ladder);

// QEfficient's qconfig.json (create_and_dump_qconfigs): the HF config, the transforms the
// export applied, the ONNX path, and the compiler configuration with its specializations.
nlohmann::json QConfigJson(const std::filesystem::path& export_dir, const CompileOptions& options,
                           const std::vector<SpecializationSummary>& specs, const std::vector<std::string>& command);

struct CompileSummary {
  std::vector<SpecializationSummary> specializations;
  std::vector<std::string> command;  // qaic/qnn: the SDK compiler invocation
  nlohmann::json manifest_extra;
};

using ProgressFn = std::function<void(const std::string& stage, const std::string& message, int64_t done, int64_t total)>;

// Reads <export_dir>/model.onnx (+ external data) and writes the qpc files into `staging`.
absl::StatusOr<CompileSummary> CompileModel(const std::filesystem::path& export_dir, const CompileOptions& options,
                                            const std::filesystem::path& staging, const ProgressFn& progress);

}  // namespace qeff::compiler

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
inline constexpr int kCompilerFormatVersion = 1;

struct CompileOptions {
  std::string target = "cpu";
  int batch_size = 1;
  int prefill_seq_len = 32;
  int ctx_len = 128;
  int num_cores = 0;                // cpu: runtime threads (0 = all cores)
  std::string weight_dtype = "fp32";  // fp32 | bf16 | int8 (Linear weights; int8 = per-row scales)
  int full_batch_size = 0;          // continuous batching slots (0 = off)
};

absl::Status ValidateOptions(const CompileOptions& options);

class OnnxModel;
// Graph input X paired with output X_RetainedState (a causal LM's KV cache).
bool HasRetainedState(const OnnxModel& model);

struct SpecializationSummary {
  std::string name;
  int batch_size = 0, seq_len = 0, ctx_len = 0;  // ctx_len 0 for encoders
};

// Causal LMs: Prefill (seq_len = prefill_seq_len) and Decode (seq_len = 1) at ctx_len;
// encoders: one Embedding specialization at seq_len = prefill_seq_len.
std::vector<SpecializationSummary> PlanSpecializations(const CompileOptions& options, bool causal);

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

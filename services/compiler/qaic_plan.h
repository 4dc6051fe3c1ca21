// Cloud AI 100 / QNN targets: the files and the compiler invocation QEfficient would use
// (specializations.json in the named format, custom_io.yaml pairing every KV input with its
// _RetainedState output, qaic-compile argv). The SDK compiler runs when it is installed.
#pragma once

#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "services/compiler/compiler.h"

namespace qeff::compiler {

// {"specializations": [{"name": "Prefill", "symbols": {"batch_size": "1", ...}}, ...]}
nlohmann::json SpecializationsJson(const std::vector<SpecializationSummary>& specs);

// The qaic-compile argv (paths relative to the qpc directory, where it runs). Encoders (no
// retained state) get neither -retained-state nor a custom-IO file, as in QEfficient.
std::vector<std::string> QaicCompileCommand(const std::filesystem::path& onnx_path, const CompileOptions& options,
                                            bool causal);

absl::StatusOr<CompileSummary> CompileForSdk(const std::filesystem::path& export_dir, const CompileOptions& options,
                                             const std::filesystem::path& staging, const ProgressFn& progress);

}  // namespace qeff::compiler

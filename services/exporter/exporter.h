// HF model folder -> QEfficient-style ONNX graph (KV cache as retained state, custom ops as ONNX
// functions, weights as external data). The graph is built directly from the safetensors
// weights by the builder registered for config.json's architectures[0].
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/hf/model_folder.h"

namespace qeff::exporter {

// Bump when the bytes of an export change for the same inputs (part of the cache key).
inline constexpr int kExportFormatVersion = 2;  // 2: shared decoder builder, SparseMoE, encoder token_type_ids

struct ExportOptions {
  // QEfficient's CB export (causal LMs only): KV cache [full_batch_size, ...], a batch_index
  // [batch_size, 1] input after the cache, CtxScatterCB/CtxGatherCB instead of CtxScatter/CtxGather.
  bool continuous_batching = false;
  bool fp16_clip = false;
};

struct ExportSummary {
  std::string architecture;
  int num_layers = 0;
  int64_t num_parameters = 0;
  nlohmann::json manifest_extra;
};

using ProgressFn = std::function<void(const std::string& stage, const std::string& message, int64_t done,
                                      int64_t total)>;

// Writes staging/model.onnx (+ staging/model.onnx.data external weights). Unknown architecture →
// UNIMPLEMENTED listing the supported ones. Missing/ill-shaped weights or bad config values →
// INVALID_ARGUMENT naming the tensor/field, as is continuous_batching for a model without a KV
// cache (an encoder). manifest_extra records `continuous_batching` and QEfficient's names of
// the applied `transforms` (PyTorch ones) and `onnx_transforms`. `progress` may be empty.
absl::StatusOr<ExportSummary> ExportModel(const hf::ModelFolder& folder, const ExportOptions& options,
                                          const std::filesystem::path& staging, const ProgressFn& progress);

}  // namespace qeff::exporter

// Scaffolding the decoder (and encoder) architecture builders in models/ share: reading the
// config fields every HF decoder has, checked weight loading under an optional prefix, the
// causal-LM prologue (IO + token embedding) and epilogue (lm_head, logits, summary), and
// per-layer progress. What is specific to an architecture stays in its models/*.cc.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/hf/model_folder.h"
#include "services/exporter/blocks.h"
#include "services/exporter/exporter.h"
#include "services/exporter/graph_builder.h"
#include "services/exporter/model_registry.h"

namespace qeff::exporter {

// ---- config ----
// The dimensions every decoder config has (architecture configs derive from it).
struct DecoderDims {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, layers = 0, vocab = 0, inner = 0, positions = 0;
};

// Reads hidden_size, num_attention_heads, num_key_value_heads (default: num_attention_heads),
// num_hidden_layers, vocab_size, intermediate_size and max_position_embeddings, in that order.
// With `defaults`, each field falls back to its value there when absent. head_dim is not read.
absl::Status ReadDecoderDims(const nlohmann::json& c, DecoderDims* d, const DecoderDims* defaults = nullptr);

// INVALID_ARGUMENT unless `hidden` (config key hidden_key) is a multiple of `heads` (heads_key).
absl::Status CheckHeadsDivide(int64_t hidden, int64_t heads, const std::string& hidden_key = "hidden_size",
                              const std::string& heads_key = "num_attention_heads");
// hidden / heads, checked to divide exactly and to be even (for RoPE).
absl::StatusOr<int64_t> RopeHeadDimFromHidden(int64_t hidden, int64_t heads);
// INVALID_ARGUMENT unless num_attention_heads is a multiple of num_key_value_heads.
absl::Status CheckKvGroups(int64_t heads, int64_t kv_heads);

// A string field that must be one of `allowed`: UNIMPLEMENTED `key "value" is not supported
// (a, b, ...)` otherwise.
absl::StatusOr<std::string> ConfigChoice(const nlohmann::json& c, const std::string& key, const std::string& fallback,
                                         std::initializer_list<const char*> allowed);

// ---- weights ----
// Checked weight loads into `g`, each name prefixed with `prefix`.
struct WeightLoader {
  GraphBuilder& g;
  const hf::ModelFolder& folder;
  std::string prefix;

  absl::StatusOr<std::string> Tensor(const std::string& name, const std::vector<int64_t>& shape) const;
  // A vector [n] (norm weight, bias).
  absl::StatusOr<std::string> Vec(const std::string& name, int64_t n) const;
  // A vector [n] when `present`, else "" (no bias).
  absl::StatusOr<std::string> OptionalVec(bool present, const std::string& name, int64_t n) const;
  // An nn.Linear weight [out, in], added transposed as [in, out].
  absl::StatusOr<std::string> Lin(const std::string& name, int64_t out, int64_t in) const;
};

// "" when folder has `name`, `prefix` when it has prefix + name, INVALID_ARGUMENT otherwise
// (naming the tensor with `missing_hint` when given, e.g. `"x" (or "y")`).
absl::StatusOr<std::string> DetectWeightPrefix(const hf::ModelFolder& folder, const std::string& prefix,
                                               const std::string& name, const std::string& missing_hint = "");

struct LayerNormWeights {
  std::string weight, bias;
};
// <name>.weight and <name>.bias, both [n].
absl::StatusOr<LayerNormWeights> LoadLayerNorm(const WeightLoader& w, const std::string& name, int64_t n);
std::string LayerNorm(GraphBuilder& g, const std::string& x, const LayerNormWeights& ln, float epsilon);

// ---- causal-LM scaffolding ----
struct DecoderStart {
  CausalLMIO io;
  std::string embed;   // the token embedding table [vocab, hidden]
  std::string hidden;  // Gather(embed, input_ids), [B,S,hidden]
};
// Declares the QEff causal-LM IO (layers, kv_heads, head_dim, vocab from `d`; batch_index and
// full_batch_size cache rows when ctx.options.continuous_batching), reports the
// "embeddings" progress step, loads `embed_name` [vocab, hidden] and gathers the input tokens.
absl::StatusOr<DecoderStart> BeginDecoder(BuildContext& ctx, const WeightLoader& w, const DecoderDims& d,
                                          const std::string& embed_name);

// Reports "layer i+1 of layers".
void ReportLayer(BuildContext& ctx, int layer, int64_t layers);

// The lm_head table [vocab, hidden]: `embed` when tied, else lm_head.weight (unprefixed).
absl::StatusOr<std::string> LmHeadWeight(const WeightLoader& w, const std::string& embed, bool tied,
                                         const DecoderDims& d);
// LmHeadWeight, then the logits output at the last position (LogitsAtLastPosition, soft-capped
// when final_softcap > 0).
absl::Status TiedOrUntiedLogits(const WeightLoader& w, const CausalLMIO& io, const std::string& hidden,
                                const std::string& embed, bool tied, const DecoderDims& d,
                                float final_softcap = 0.0f);

// num_layers, and manifest_extra = hidden_size, num_heads, num_kv_heads, head_dim, vocab_size,
// max_positions from `d`, plus `extra`.
void SetDecoderSummary(ExportSummary* summary, const DecoderDims& d, const nlohmann::json& extra);

}  // namespace qeff::exporter

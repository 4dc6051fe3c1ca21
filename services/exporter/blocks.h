// Building blocks shared by the architecture builders: the QEff causal-LM IO contract (inputs,
// retained-state KV outputs, causal mask over the cache, logits at argmax(position_ids)),
// KV-cache attention with CtxScatter/CtxGather, norms, linear layers, activations, and checked
// config/weight access.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/hf/model_folder.h"
#include "services/exporter/graph_builder.h"

namespace qeff::exporter {

// ---- config.json access with validation (INVALID_ARGUMENT naming the field) ----
// An integer in [min, max]; `fallback` when absent or null (pass nullptr to require it).
absl::StatusOr<int64_t> ConfigInt(const nlohmann::json& config, const std::string& key, int64_t min, int64_t max,
                                  const int64_t* fallback = nullptr);
absl::StatusOr<double> ConfigFloat(const nlohmann::json& config, const std::string& key, double min, double max,
                                   double fallback);
absl::StatusOr<bool> ConfigBool(const nlohmann::json& config, const std::string& key, bool fallback);
absl::StatusOr<std::string> ConfigString(const nlohmann::json& config, const std::string& key,
                                         const std::string& fallback);

// ---- weights ----
// Looks up `name`, checks dtype and shape, and adds it as an external-data initializer.
absl::StatusOr<std::string> LoadWeight(GraphBuilder& g, const hf::ModelFolder& folder, const std::string& name,
                                       const std::vector<int64_t>& shape);

// Looks up a linear weight stored by HF as [out, in] (nn.Linear), checks it, and adds it
// transposed, as [in, out], so the graph multiplies by it directly (MatMul(x, w)).
absl::StatusOr<std::string> LoadLinearWeight(GraphBuilder& g, const hf::ModelFolder& folder, const std::string& name,
                                             int64_t out_features, int64_t in_features);

// A float32 constant stored inline in model.onnx (raw data) under `name`; not counted as a parameter.
std::string ConstF32(GraphBuilder& g, const std::string& name, const std::vector<float>& values,
                     const std::vector<int64_t>& dims);

// ---- QEff causal-LM IO ----
struct CausalLMShape {
  int num_layers = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab = 0;
  // QEfficient's continuous batching: the cache has full_batch_size rows (KV slots) and a
  // batch_index input names the slot of each batch row.
  bool continuous_batching = false;
};

struct CausalLMIO {
  std::string input_ids;     // int64 [B,S]
  std::string position_ids;  // int64 [B,S], -1 = padding
  std::string batch_index;   // int64 [B,1], the KV slot of each row; empty unless continuous batching
  std::string ctx_indices;   // int64 [1,1,C] = Range(0, C), C from past_key.0
  std::string causal_mask;   // bool [B,1,S,C], true where the slot must not be attended
};

// Declares inputs (input_ids, position_ids, past_key.i / past_value.i, and batch_index last
// with continuous batching) and outputs (logits, then past_key.i_RetainedState /
// past_value.i_RetainedState in layer order), and builds the ctx indices and causal mask every
// layer shares. The cache's axis 0 is `batch_size`, or `full_batch_size` with continuous
// batching (QEfficient's dynamic axes).
CausalLMIO DeclareCausalLM(GraphBuilder& g, const CausalLMShape& shape);

// A mask that, besides the causal one, hides slots older than a sliding window of `window`
// positions: true where kv_idx > position_id or kv_idx <= position_id - window, i.e. query i
// attends key j only when i - window < j <= i (HF's eager sliding window). Padding rows (-1)
// are fully masked, as in the causal mask.
std::string SlidingWindowMask(GraphBuilder& g, const CausalLMIO& io, int64_t window);

std::string PastKey(int layer);
std::string PastValue(int layer);

// ---- layers ----
std::string Linear(GraphBuilder& g, const std::string& x, const std::string& weight_in_out,
                   const std::string& bias = "");
std::string LayerNorm(GraphBuilder& g, const std::string& x, const std::string& scale, const std::string& bias,
                      float epsilon);
// 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))) (HF gelu_new / gelu_pytorch_tanh).
std::string GeluTanh(GraphBuilder& g, const std::string& x);
// 0.5·x·(1 + erf(x/√2)) (HF gelu).
std::string GeluErf(GraphBuilder& g, const std::string& x);

// weight · x / sqrt(mean(x², -1) + ε) as one CustomRMSNorm op (HF LlamaRMSNorm).
std::string RMSNorm(GraphBuilder& g, const std::string& x, const std::string& weight, float epsilon);
// x · sigmoid(x) (HF silu).
std::string Silu(GraphBuilder& g, const std::string& x);

// cos/sin gathered at the clamped position ids (built by rotary.h).
struct RopeTables {
  std::string cos;  // [B,1,S,rotary_dim]
  std::string sin;
};

// [B,S,heads·head_dim] -> [B,heads,S,head_dim] and back.
std::string SplitHeads(GraphBuilder& g, const std::string& x, int64_t heads, int64_t head_dim);
std::string MergeHeads(GraphBuilder& g, const std::string& x, int64_t hidden);

struct AttentionOptions {
  std::vector<float> score_divisors;
  // Query heads per kv head (grouped-query attention): k/v have heads / kv_groups heads; the
  // cache keeps that many and the gathered K/V are repeated to the query heads
  // (Unsqueeze/Expand/Reshape, HF repeat_kv).
  int64_t kv_groups = 1;
  std::string mask;  // bool [B,1,S,C]; empty = io.causal_mask
  // After the divisors: scores·score_multiplier when non-zero (Gemma2's
  // query_pre_attn_scalar^-0.5), then SoftCap(scores, softcap) when positive, before the mask.
  float score_multiplier = 0.0f;
  float softcap = 0.0f;
  // Added to the scaled scores before the soft-cap and the mask, broadcast to [B,Hq,S,C]
  // (ALiBi); empty = none.
  std::string score_bias;
};
// Attention over the retained KV cache of `layer`: new k/v [B,kv_heads,S,hd] are written with
// CtxScatter at position_ids (those outputs are the *_RetainedState graph outputs), the whole
// cache is read back with CtxGather (CtxScatterCB / CtxGatherCB at the rows io.batch_index
// names, with continuous batching), scores = q·kᵀ scaled as `options` says, masked with float32
// lowest (finite, so fully padded rows stay finite), softmax, ·v. Returns [B,heads,S,hd].
std::string CachedAttention(GraphBuilder& g, const CausalLMIO& io, int layer, const std::string& q,
                            const std::string& k, const std::string& v, const AttentionOptions& options);

// cap·tanh(x / cap). The last Mul's output is named exactly `output` when given, else fresh
// from `hint` (Div and Tanh from hint + "_div" / "_tanh").
std::string SoftCap(GraphBuilder& g, const std::string& x, float cap, const std::string& hint,
                    const std::string& output = "");

// logits output [B,1,V]: the hidden state at argmax(position_ids) of each row times
// Transpose(embedding [V,H]), soft-capped (SoftCap) when final_softcap > 0.
void LogitsAtLastPosition(GraphBuilder& g, const CausalLMIO& io, const std::string& hidden, int64_t hidden_size,
                          const std::string& embedding_vh, float final_softcap = 0.0f);

// The hidden state [B,1,H] at argmax(position_ids) of each row (for heads that are not a bare
// tied/untied MatMul, e.g. GPT-J's lm_head with bias).
std::string LastPositionHidden(GraphBuilder& g, const CausalLMIO& io, const std::string& hidden,
                               int64_t hidden_size);

}  // namespace qeff::exporter
